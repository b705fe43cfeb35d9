"""Event-study figure: coefficients by event time with confidence intervals (input: ``causalcts.did.event_study``).

No matplotlib backend is chosen at import.
"""

from __future__ import annotations

from typing import Literal

import matplotlib.pyplot as plt
import numpy as np

from causalcts.errors import CausalCTSError, check_option
from causalcts.results.base import EstimationResults

__all__ = ["plot_event_study"]


def plot_event_study(
    res: EstimationResults,
    *,
    level: float = 0.95,
    intervals: Literal["cluster", "wild"] = "cluster",
    ax=None,
):
    """Plot event-study coefficients against event time, with the reference period drawn at zero.

    Parameters
    ----------
    res
        A result of :func:`causalcts.did.event_study` (it carries ``info["event_times"]``).
    level
        Confidence level of the CRV1 t(G - 1) intervals.
    intervals
        ``"cluster"`` (CRV1) or ``"wild"`` (the wild-bootstrap intervals of a ``cov="wild"`` fit, at the level
        used in that fit).
    ax
        Matplotlib axes to draw on (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from causalcts.did import event_study
    >>> from causalcts.plots.event_plots import plot_event_study
    >>> rng = np.random.default_rng(0)
    >>> teams, weeks = np.repeat(np.arange(30), 6), np.tile(np.arange(6), 30)
    >>> df = pd.DataFrame({"team": teams, "week": weeks, "onset": np.where(teams < 15, 3.0, np.nan)})
    >>> df["y"] = rng.normal(size=180) + 0.4 * (weeks >= df["onset"])
    >>> ax = plot_event_study(event_study(df, outcome="y", entity="team", time="week", onset="onset"))
    >>> [t.get_text() for t in ax.get_xticklabels()][:3]
    ['-3', '-2', '-1']
    """
    check_option("intervals", intervals, ("cluster", "wild"))
    info = res.info
    if "event_times" not in info:
        raise CausalCTSError("plot_event_study needs a result of causalcts.did.event_study (info['event_times']).")
    times = np.asarray(info["event_times"], dtype=float)
    est = res.params.to_numpy()
    if intervals == "wild":
        if "wild" not in info:
            raise CausalCTSError('intervals="wild" needs a fit with cov="wild"; this one has CRV1 intervals only.')
        lo = np.array([info["wild"][n]["lower"] for n in res.params.index])
        hi = np.array([info["wild"][n]["upper"] for n in res.params.index])
        label = "wild cluster bootstrap interval"
    else:
        ci = res.conf_int(level)
        lo, hi = ci["lower"].to_numpy(), ci["upper"].to_numpy()
        label = f"{level:.0%} CRV1 interval, t({res.df_resid:g})"
    if info.get("design") != "share":
        ref = float(info["reference"])
        order = np.argsort(np.append(times, ref))
        times = np.append(times, ref)[order]
        est, lo, hi = (np.append(a, 0.0)[order] for a in (est, lo, hi))
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.axvline(-0.5, color="grey", lw=0.8, ls="--")
    ax.vlines(times, lo, hi, color="tab:blue", lw=1.5, label=label)
    ax.plot(times, est, "o", color="tab:blue", label="estimate")
    ax.set_xticks(times, [f"{t:g}" for t in times])
    binned = ", ".join(f"{k} {v}" for k, v in info.get("binned", {}).items())
    ax.set(
        xlabel="event time (periods since onset)" + (f"; binned: {binned}" if binned else ""),
        ylabel="effect on " + str(res.spec.get("outcome", "the outcome")),
        title=f"{res.method}: reference period {info['reference']}"
        if info.get("design") != "share"
        else f"{res.method}: distributed leads and lags",
    )
    ax.legend(loc="best")
    return ax
