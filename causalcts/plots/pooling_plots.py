"""Shrinkage plot of Bayesian partial pooling (input: ``causalcts.bayes.pooling.pool``).

No matplotlib backend is chosen at import.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from causalcts.errors import CausalCTSError

__all__ = ["plot_pooling"]


def plot_pooling(res, *, level: float = 0.95, ax=None):
    """Raw estimate ± SE interval against the pooled (shrunken) effect of each rollout, with the mu band.

    Each rollout is one row: the raw estimate with its normal ``level`` interval (hollow circle, grey)
    and, just below, the posterior mean and equal-tailed ``level`` interval of its pooled effect
    (filled circle). A vertical line marks the posterior mean of ``mu`` and the shaded band its
    ``level`` interval.

    Parameters
    ----------
    res
        A result of :func:`causalcts.bayes.pooling.pool`.
    level
        Level of both intervals and of the ``mu`` band.
    ax
        Matplotlib axes to draw on (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.bayes.pooling import pool
    >>> from causalcts.plots.pooling_plots import plot_pooling
    >>> frame = pd.DataFrame({"rollout": ["A", "B", "C"], "att": [1.0, 3.0, 2.0], "se": [1.0, 1.0, 2.0]})
    >>> import warnings
    >>> from causalcts.errors import ConvergenceWarning
    >>> with warnings.catch_warnings():  # a short run, for speed; it warns of its low ESS
    ...     warnings.simplefilter("ignore", ConvergenceWarning)
    ...     res = pool(frame, estimate="att", std_error="se", label="rollout", draws=200, tune=200, seed=1)
    >>> ax = plot_pooling(res)
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['A', 'B', 'C']
    """
    data = getattr(res, "data", None)
    if data is None or getattr(res, "idata", None) is None or "theta" not in res.idata.posterior:
        raise CausalCTSError("plot_pooling needs a result of causalcts.bayes.pooling.pool (with its draws).")
    if not isinstance(level, (int, float)) or not 0 < level < 1:
        raise CausalCTSError(f"level={level} must lie strictly between 0 and 1 (e.g. 0.95).")
    effects = res.effects(level)
    mu_lo, mu_hi = res.conf_int(level).loc["mu"]
    mu = float(res.params["mu"])
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.45 * len(data) + 1.5))
    pos = np.arange(len(data))[::-1].astype(float)
    z = float(stats.norm.ppf(0.5 + level / 2))
    raw, se = data["estimate"].to_numpy(), data["std_error"].to_numpy()
    ax.axvspan(mu_lo, mu_hi, color="C0", alpha=0.12, label=f"mu: {level:.0%} interval")
    ax.axvline(mu, color="C0", lw=1, label=f"mu: posterior mean {mu:.3g}")
    ax.errorbar(
        raw, pos + 0.15, xerr=z * se, fmt="o", mfc="white", color="0.45", capsize=2, label=f"raw estimate ± {z:.2f} SE"
    )
    mean = effects["mean"].to_numpy()
    err = np.vstack([mean - effects["lower"].to_numpy(), effects["upper"].to_numpy() - mean])
    ax.errorbar(mean, pos - 0.15, xerr=err, fmt="o", color="C1", capsize=2, label="pooled (posterior)")
    ax.set_yticks(pos, [str(v) for v in data.index])
    ax.set_ylabel(str(data.index.name or "rollout"))
    ax.set_xlabel(f"effect ({level:.0%} intervals)")
    ax.set_title("Partial pooling: raw estimates shrink towards mu")
    ax.legend(loc="best", fontsize="small")
    return ax
