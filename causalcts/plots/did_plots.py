"""Figures of rollout designs: ATT(g,t) by cohort, event-time effects, TWFE weights.

Importing this module chooses no matplotlib backend.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from causalcts.diagnostics.twfe_weights import TWFEWeights
from causalcts.did.att_gt import AggregatedATT, ATTgtResults, BootstrapBands
from causalcts.errors import CausalCTSError

__all__ = ["plot_att_gt", "plot_event_time", "plot_twfe_weights"]


def plot_att_gt(result: ATTgtResults, *, bands: BootstrapBands | None = None, axes=None):
    """ATT(g,t) against time, one panel per cohort, pre-treatment cells grey, post-treatment blue.

    Bars are pointwise intervals at the result's level, or the uniform band of ``bands``
    (from :meth:`ATTgtResults.bootstrap`) when given.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from causalcts.did.att_gt import att_gt
    >>> from causalcts.plots.did_plots import plot_att_gt
    >>> df = pd.DataFrame({"team": np.repeat(range(30), 4), "week": np.tile(range(1, 5), 30),
    ...                    "g": np.repeat([0, 3, 4], 40)})
    >>> df["y"] = np.random.default_rng(0).normal(size=120) + (df["g"] > 0) * (df["week"] >= df["g"])
    >>> axes = plot_att_gt(att_gt(df, outcome="y", entity="team", time="week", cohort="g"))
    """
    tab = result.att
    if bands is not None:
        tab[["lower", "upper"]] = bands.table[["lower", "upper"]].to_numpy()
    cohorts = np.unique(tab["cohort"])
    if axes is None:
        _, axes = plt.subplots(len(cohorts), 1, figsize=(7, 2.4 * len(cohorts)), sharex=True, squeeze=False)
        axes = axes[:, 0]
    what = "uniform band" if bands is not None else f"pointwise {result.level:.0%} CI"
    for ax, g in zip(axes, cohorts):
        d = tab[tab["cohort"] == g]
        for post, color, label in ((False, "0.5", "pre-treatment"), (True, "tab:blue", "post-treatment")):
            s = d[d["post"] == post]
            err = np.vstack([s["att"] - s["lower"], s["upper"] - s["att"]])
            ax.errorbar(s["time"], s["att"], yerr=err, fmt="o", color=color, capsize=3, label=label)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_ylabel(f"cohort {g:g}")
    axes[0].set_title(f"ATT(g,t), {what}")
    axes[0].legend(fontsize=8)
    axes[-1].set_xlabel("period")
    return axes


def plot_event_time(aggregate: AggregatedATT, *, bands: BootstrapBands | None = None, ax=None):
    """Event-time (``dynamic``) effects with intervals; negative event times are placebo periods.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from causalcts.did.att_gt import att_gt
    >>> from causalcts.plots.did_plots import plot_event_time
    >>> df = pd.DataFrame({"team": np.repeat(range(30), 4), "week": np.tile(range(1, 5), 30),
    ...                    "g": np.repeat([0, 3, 4], 40)})
    >>> df["y"] = np.random.default_rng(0).normal(size=120)
    >>> res = att_gt(df, outcome="y", entity="team", time="week", cohort="g")
    >>> ax = plot_event_time(res.aggregate("dynamic"))
    """
    if aggregate.kind == "simple":
        raise CausalCTSError("The simple aggregate has no table to plot; aggregate with kind='dynamic'.")
    tab = aggregate.table.copy()
    if bands is not None:
        tab[["lower", "upper"]] = bands.table[["lower", "upper"]].to_numpy()
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    x = tab.index.to_numpy(dtype=float)
    pre = x < 0 if aggregate.kind == "dynamic" else np.zeros(len(x), bool)
    for mask, color, label in ((pre, "0.5", "pre-treatment"), (~pre, "tab:blue", "post-treatment")):
        s = tab[mask]
        err = np.vstack([s["att"] - s["lower"], s["upper"] - s["att"]])
        ax.errorbar(x[mask], s["att"], yerr=err, fmt="o", color=color, capsize=3, label=label)
    ax.axhline(0, color="black", lw=0.8)
    what = "uniform band" if bands is not None else f"pointwise {aggregate.level:.0%} CI"
    ax.set(
        xlabel={"dynamic": "event time (periods since onset)", "group": "cohort", "calendar": "period"}[aggregate.kind],
        ylabel="ATT",
        title=f"{aggregate.kind} aggregate: overall {aggregate.estimate:.3g} ({what})",
    )
    ax.legend(fontsize=8)
    return ax


def plot_twfe_weights(weights: TWFEWeights, *, bins: int = 40, ax=None):
    """Histogram of the treated cells' TWFE weights, negative weights in red and counted in the legend.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.diagnostics.twfe_weights import twfe_weights
    >>> from causalcts.plots.did_plots import plot_twfe_weights
    >>> df = pd.DataFrame({"team": [1, 1, 1, 2, 2, 2], "week": [1, 2, 3] * 2,
    ...                    "treated": [0, 1, 1, 0, 0, 1], "y": [1.0, 2.2, 2.6, 1.1, 1.0, 2.3]})
    >>> ax = plot_twfe_weights(twfe_weights(df, outcome="y", entity="team", time="week", treatment="treated"))
    """
    w = weights.weights["weight"].to_numpy(dtype=float)
    w = w[w != 0]
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    edges = np.histogram_bin_edges(w, bins=bins) if len(w) else np.linspace(-1, 1, bins + 1)
    if 0 not in edges and edges[0] < 0 < edges[-1]:
        edges = np.sort(np.append(edges, 0.0))  # no bin straddles zero, so the colours are exact
    ax.hist(
        w[w > 0], bins=edges, color="tab:blue", label=f"{weights.n_positive} positive (sum {weights.sum_positive:.3f})"
    )
    ax.hist(
        w[w < 0], bins=edges, color="tab:red", label=f"{weights.n_negative} negative (sum {weights.sum_negative:.3f})"
    )
    ax.axvline(0, color="black", lw=0.8)
    ax.set(
        xlabel="weight of the cell's effect in beta",
        ylabel="treated (team, period) cells",
        title=f"{weights.kind} weights of {weights.treatment}: beta = {weights.beta:.4g}",
    )
    ax.legend(fontsize=8)
    return ax
