"""Figures of the rollout report, drawn on :class:`matplotlib.figure.Figure` (no pyplot, no backend chosen).

Each function returns a Figure; :func:`png` turns it into PNG bytes for the report folder and the HTML page.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from causalcts.plots.did_plots import plot_twfe_weights
from causalcts.plots.event_plots import plot_event_study
from causalcts.plots.honest_plots import plot_honest_did

__all__ = [
    "adoption_by_cohort",
    "estimates_forest",
    "event_study_figure",
    "honest_figure",
    "png",
    "pooled_forest",
    "share_histogram",
    "twfe_weights_figure",
]


def png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from causalcts.workflows.figures import png
    >>> png(Figure(figsize=(2, 2)))[:4]
    b'\\x89PNG'
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def adoption_by_cohort(
    frame: pd.DataFrame, cohorts: pd.Series, *, entity: str, time: str, share: str, labels: Mapping[int, str]
) -> Figure:
    """Mean adoption share by week for groups of onset cohorts (at most five groups, plus never-treated)."""
    fig = Figure(figsize=(7.5, 4))
    ax = fig.subplots()
    c = cohorts.reindex(frame[entity].to_numpy()).to_numpy()
    treated = np.unique(c[c > 0])
    groups = np.array_split(treated, min(5, len(treated))) if len(treated) else []
    for g in groups:
        rows = np.isin(c, g)
        m = frame.loc[rows].groupby(time)[share].mean()
        n = len(pd.unique(frame.loc[rows, entity]))
        ax.plot(
            m.index,
            m.to_numpy(),
            lw=2,
            label=f"onset weeks {labels.get(g[0] - 1, g[0])}"
            f"{'' if len(g) == 1 else ' to ' + str(labels.get(g[-1] - 1, g[-1]))} ({n} teams)",
        )
    never = c == 0
    if never.any():
        m = frame.loc[never].groupby(time)[share].mean()
        ax.plot(
            m.index,
            m.to_numpy(),
            color="black",
            ls="--",
            label=f"never reach the threshold ({len(pd.unique(frame.loc[never, entity]))} teams)",
        )
    ax.set(
        xlabel=f"{time} (periods from the first)",
        ylabel=f"mean {share}",
        ylim=(-0.02, 1.02),
        title="Adoption curves by onset cohort",
    )
    ax.legend(fontsize=8, loc="upper left")
    return fig


def share_histogram(values: pd.Series, *, share: str, threshold: float) -> Figure:
    """Histogram of the share over team-weeks, with the onset threshold marked."""
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    ax.hist(values.dropna().to_numpy(), bins=np.linspace(0, 1, 41).tolist(), color="tab:blue", alpha=0.8)
    ax.axvline(threshold, color="tab:red", ls="--", label=f"onset threshold {threshold:g}")
    ax.set(xlabel=share, ylabel="team-weeks", title=f"Distribution of {share}")
    ax.legend()
    return fig


def estimates_forest(rows: Sequence[Mapping], long_run: Mapping[str, Mapping], *, share: str, outcome: str) -> Figure:
    """Short-run effect of the share and long-run effect for each method, with intervals."""
    fig = Figure(figsize=(9, 0.5 * max(len(long_run), 2) + 1.6))
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    sr = [r for r in rows if r["term"] == share]
    methods = [r["method"] for r in sr]
    for i, r in enumerate(sr):
        ax1.plot([r["lower"], r["upper"]], [i, i], color="tab:blue", lw=2)
        ax1.plot(r["estimate"], i, "o", color="tab:blue")
        lr = long_run.get(r["method"])
        if lr and lr.get("estimate") is not None:
            ax2.plot([lr["lower"], lr["upper"]], [i, i], color="tab:green", lw=2)
            ax2.plot(lr["estimate"], i, "o", color="tab:green")
    for ax in (ax1, ax2):
        ax.axvline(0, color="grey", lw=0.8)
    ax1.set_yticks(range(len(methods)), methods)
    ax1.invert_yaxis()
    ax1.set(xlabel=f"short-run effect of {share} on {outcome}", title="Short run")
    ax2.set(xlabel="long-run effect gamma / (1 - beta)", title="Long run")
    return fig


def event_study_figure(es, *, outcome: str, level: float) -> Figure:
    """The event study of the onset (binned end points)."""
    fig = Figure(figsize=(7, 3.8))
    ax = fig.subplots()
    plot_event_study(es, level=level, ax=ax)
    ax.set_title(f"Event study of the onset: {outcome} (end points binned)")
    return fig


def honest_figure(table: pd.DataFrame) -> Figure:
    """HonestDiD robust intervals against the smoothness bound M."""
    fig = Figure(figsize=(6.5, 3.6))
    plot_honest_did(table, ax=fig.subplots())
    return fig


def twfe_weights_figure(weights) -> Figure:
    """Histogram of the TWFE weights of the treated cells."""
    fig = Figure(figsize=(6.5, 3.4))
    plot_twfe_weights(weights, ax=fig.subplots())
    return fig


def pooled_forest(table: pd.DataFrame, *, mu: Mapping, outcome: str) -> Figure:
    """Each experiment's estimate, its partially pooled effect, and the average effect mu."""
    fig = Figure(figsize=(7, 0.55 * len(table) + 1.8))
    ax = fig.subplots()
    for i, (_, r) in enumerate(table.iterrows()):
        ax.plot([r["lower"], r["upper"]], [i - 0.12, i - 0.12], color="tab:blue", lw=2)
        ax.plot(r["estimate"], i - 0.12, "o", color="tab:blue", label="own estimate" if i == 0 else None)
        ax.plot([r["pooled_lower"], r["pooled_upper"]], [i + 0.12, i + 0.12], color="tab:orange", lw=2)
        ax.plot(r["pooled_mean"], i + 0.12, "s", color="tab:orange", label="partially pooled" if i == 0 else None)
    n = len(table)
    ax.plot([mu["lower"], mu["upper"]], [n, n], color="black", lw=2)
    ax.plot(mu["estimate"], n, "D", color="black", label="average effect mu")
    ax.set_yticks(range(n + 1), [*table["experiment"], "average (mu)"])
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(xlabel=f"long-run effect on {outcome}", title="Partial pooling across rollouts")
    ax.legend(fontsize=8)
    return fig
