"""HonestDiD sensitivity plot: the original and the robust confidence intervals against M (or Mbar).

Input: the table of :func:`causalcts.diagnostics.honest_did`. No matplotlib backend is chosen at import.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from causalcts.errors import CausalCTSError

__all__ = ["plot_honest_did"]


def plot_honest_did(table: pd.DataFrame, *, ax=None):
    """Plot robust confidence intervals against the bound, beside the original interval, with the breakdown value.

    The original interval (``table.attrs["original"]``) is drawn left of the smallest bound, as HonestDiD's
    ``createSensitivityPlot`` does; each robust interval is a vertical bar at its ``M`` (or ``Mbar``); a dashed
    horizontal line marks 0 and a dotted vertical line the breakdown value (the smallest bound whose interval
    contains 0), when there is one.

    Parameters
    ----------
    table
        The result of :func:`causalcts.diagnostics.honest_did` (columns ``M`` or ``Mbar``, ``lower``, ``upper``,
        ``method``; ``attrs`` with ``"original"``, ``"parameter"`` and ``"breakdown"``).
    ax
        Matplotlib axes to draw on (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    causalcts.errors.CausalCTSError
        ``table`` is not a result of ``honest_did``.

    Examples
    --------
    >>> import numpy as np
    >>> from causalcts.diagnostics import honest_did
    >>> from causalcts.plots.honest_plots import plot_honest_did
    >>> b, V = np.array([0.01, -0.005, 0.05, 0.06]), np.diag([1e-4] * 4)
    >>> tab = honest_did(betahat=b, sigma=V, num_pre=2, num_post=2, M=[0, 0.01, 0.05])
    >>> ax = plot_honest_did(tab)
    >>> ax.get_xlabel(), [t.get_text() for t in ax.get_legend().get_texts()]
    ('M', ['breakdown M = 0.05', 'Original', 'FLCI'])
    """
    if not isinstance(table, pd.DataFrame) or "parameter" not in table.attrs or "original" not in table.attrs:
        raise CausalCTSError("plot_honest_did needs the table returned by causalcts.diagnostics.honest_did.")
    param = table.attrs["parameter"]
    for col in (param, "lower", "upper", "method"):
        if col not in table.columns:
            raise CausalCTSError(f"plot_honest_did: the table has no {col!r} column; pass honest_did's result.")
    x = table[param].to_numpy(dtype=float)
    lo, hi = table["lower"].to_numpy(dtype=float), table["upper"].to_numpy(dtype=float)
    spread = float(np.ptp(x)) if x.size > 1 else max(abs(float(x[0])), 1.0)
    gap = spread / max(x.size - 1, 1) if x.size > 1 else 0.5 * spread
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    o_lo, o_hi = table.attrs["original"]
    x0 = float(x.min()) - gap
    ax.errorbar([x0], [(o_lo + o_hi) / 2], yerr=[[(o_hi - o_lo) / 2]], fmt="none", ecolor="black", capsize=4,
                lw=1.5, label="Original")  # fmt: skip
    method = str(table["method"].iloc[0])
    ax.errorbar(x, (lo + hi) / 2, yerr=[(hi - lo) / 2, (hi - lo) / 2], fmt="none", ecolor="tab:blue", capsize=4,
                lw=1.5, label=method)  # fmt: skip
    ax.axhline(0.0, color="grey", ls="--", lw=1)
    bd = table.attrs.get("breakdown", math.nan)
    if bd is not None and np.isfinite(bd):
        ax.axvline(float(bd), color="tab:red", ls=":", lw=1.2, label=f"breakdown {param} = {bd:g}")
    ax.set_xlabel(param)
    ax.set_ylabel(f"{1 - table.attrs.get('alpha', 0.05):.0%} confidence interval")
    ax.legend(loc="best", fontsize="small")
    return ax
