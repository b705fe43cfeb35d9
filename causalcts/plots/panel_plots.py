"""Figures a researcher looks at before reading numbers.

Importing this module chooses no matplotlib backend: figures show inline in a notebook, in a window
from a script, and nowhere under ``MPLBACKEND=Agg``. Every figure says on its face what it leaves out
(teams not drawn, methods without the term).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from causalcts.errors import MissingColumnError
from causalcts.results.base import EstimationResults

__all__ = ["plot_adoption", "plot_caterpillar", "plot_estimates", "plot_outcome_by_adoption", "plot_tornado"]


def _need(data: pd.DataFrame, cols: list[str]) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise MissingColumnError(f"The plot needs column(s) {missing}; columns are {list(data.columns)}.")


def plot_adoption(
    data: pd.DataFrame,
    *,
    entity: str = "team",
    time: str = "week",
    share: str = "ai_share",
    n_teams: int = 30,
    seed: int = 0,
    ax=None,
):
    """AI-tool adoption over time: a sample of team trajectories and the mean share.

    Examples
    --------
    >>> import causalcts
    >>> from causalcts.plots import plot_adoption
    >>> ax = plot_adoption(causalcts.simulate(20, 30, seed=1).data)
    """
    _need(data, [entity, time, share])
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    teams = pd.unique(data[entity])
    rng = np.random.default_rng(seed)
    pick = rng.choice(teams, size=min(n_teams, len(teams)), replace=False)
    for i, t in enumerate(pick):
        d = data[data[entity] == t]
        label = f"{len(pick)} of {len(teams)} teams (random sample)" if i == 0 else None
        ax.plot(d[time], d[share], color="tab:blue", alpha=0.25, lw=0.8, label=label)
    mean = data.groupby(time)[share].mean()
    ax.plot(mean.index, mean.to_numpy(), color="black", lw=2.5, label="mean over teams")
    ax.set(
        xlabel=time,
        ylabel="share of developers using the AI tool",
        ylim=(-0.02, 1.02),
        title="Staggered, continuous adoption",
    )
    ax.legend(loc="upper left")
    return ax


def plot_outcome_by_adoption(
    data: pd.DataFrame,
    outcome: str,
    *,
    time: str = "week",
    share: str = "ai_share",
    bins: tuple[float, ...] = (0.0, 0.25, 0.75, 1.0),
    ax=None,
):
    """Mean outcome per week for team-weeks grouped by adoption share (descriptive, not causal)."""
    _need(data, [time, share, outcome])
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    groups = pd.cut(data[share], bins=list(bins), include_lowest=True)
    for g, d in data.groupby(groups, observed=True):
        m = d.groupby(time)[outcome].mean()
        ax.plot(m.index, m.to_numpy(), label=f"ai_share in {g}")
    ax.set(xlabel=time, ylabel=outcome, title=f"{outcome} by adoption level (raw means)")
    ax.legend()
    return ax


def plot_estimates(
    results: Mapping[str, EstimationResults], term: str, *, truth: float | None = None, level: float = 0.95, ax=None
):
    """Estimates of one term across methods with confidence intervals, and the truth if known."""
    ax = ax or plt.subplots(figsize=(7, 0.6 * len(results) + 1.5))[1]
    names = list(results)
    for i, name in enumerate(names):
        r = results[name]
        if term not in r.params.index:
            ax.annotate(f"{term} not in this model", (0.02, i), xycoords=("axes fraction", "data"), va="center")
            continue
        ci = r.conf_int(level).loc[term]
        ax.plot([ci["lower"], ci["upper"]], [i, i], color="tab:blue", lw=2)
        ax.plot(r.params[term], i, "o", color="tab:blue")
    if truth is not None:
        ax.axvline(truth, color="tab:red", ls="--", label=f"truth = {truth:g}")
        ax.legend(loc="best")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set(xlabel=f"{term} ({int(level * 100)}% interval)", title=f"Estimates of {term}")
    return ax


def plot_tornado(
    sensitivity: pd.DataFrame,
    *,
    ax=None,
    title: str = "Drivers of CTS-SW, ranked by the size of their association",
):
    """Tornado plot of :func:`causalcts.evaluation.driver_sensitivity`: one bar per driver, largest on top.

    The ranking is of associations, not causal effects: each bar is the change in the outcome that
    goes with a one-SD higher driver, the other drivers held fixed; the drivers are themselves
    outcomes of the team's work, so the figure says so in its subtitle.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.plots import plot_tornado
    >>> sens = pd.DataFrame({"effect": [-8.0, 3.0], "lower": [-10.0, 1.0], "upper": [-6.0, 5.0]},
    ...                     index=["cr_velocity", "rollback_rate"])
    >>> plot_tornado(sens).get_title().splitlines()[1]
    'associations, not causal effects: a one-SD higher driver, the others held fixed'
    """
    need = {"effect", "lower", "upper"}
    if not need <= set(sensitivity.columns):
        raise MissingColumnError(f"The tornado plot needs columns {sorted(need)} (from driver_sensitivity).")
    ax = ax or plt.subplots(figsize=(7, 0.5 * len(sensitivity) + 1.8))[1]
    s = sensitivity.iloc[::-1]
    colors = ["tab:green" if v < 0 else "tab:red" for v in s["effect"]]
    ax.barh(range(len(s)), s["effect"], color=colors, alpha=0.7)
    ax.errorbar(
        s["effect"],
        range(len(s)),
        xerr=[s["effect"] - s["lower"], s["upper"] - s["effect"]],
        fmt="none",
        ecolor="black",
        capsize=3,
    )
    ax.set_yticks(range(len(s)), s.index)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(xlabel=f"change with a one-SD higher driver ({sensitivity.attrs.get('unit', 'outcome units')})")
    ax.set_title(f"{title}\nassociations, not causal effects: a one-SD higher driver, the others held fixed")
    return ax


def plot_caterpillar(result, *, term: str = "Intercept", max_groups: int = 60, ax=None):
    """Team effects with 90% intervals from a sampled mixed model (``idata['team_effects']``).

    With more than ``max_groups`` teams, ``max_groups`` teams evenly spaced in the ranking by posterior
    mean are drawn (the lowest and the highest included); the title says how many of how many.
    """
    idata = getattr(result, "idata", None)
    if idata is None or "team_effects" not in idata.groups():
        raise MissingColumnError(
            "The caterpillar plot needs a sampled fit with team effects (method='nuts' or 'bayes')."
        )
    te = idata["team_effects"]["team_effect"].sel(re_term=term)
    group_dim = [d for d in te.dims if d not in ("chain", "draw")][0]
    vals = te.stack(s=("chain", "draw")).transpose(group_dim, "s").values
    mean = vals.mean(axis=1)
    order = np.argsort(mean)
    n_all = len(order)
    if n_all > max_groups:
        order = order[np.unique(np.linspace(0, n_all - 1, max_groups).round().astype(int))]
        shown = f"showing {len(order)} of {n_all} {group_dim}s, evenly spaced in rank (lowest and highest included)"
    else:
        shown = f"all {n_all} {group_dim}s"
    lo, hi = np.quantile(vals[order], 0.05, axis=1), np.quantile(vals[order], 0.95, axis=1)
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    x = np.arange(len(order))
    ax.vlines(x, lo, hi, color="tab:blue", alpha=0.6)
    ax.plot(x, mean[order], "o", ms=3, color="tab:blue")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel=f"{group_dim} (sorted by posterior mean)", ylabel=f"team effect: {term}")
    ax.set_title(f"Team effects (posterior means, 90% intervals)\n{shown}")
    return ax
