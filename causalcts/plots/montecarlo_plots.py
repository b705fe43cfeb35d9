"""Figures of a Monte Carlo recovery study (input: :func:`causalcts.evaluation.montecarlo.summarize`).

No matplotlib backend is chosen at import. Each figure says on its face which designs it shows when
it shows only some, and which it averages over.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from causalcts.errors import MissingColumnError
from causalcts.estimators.bias import nickell_bias
from causalcts.evaluation.montecarlo import design_label

__all__ = ["plot_bias_vs_t", "plot_coverage", "plot_rmse"]


def _need(summary: pd.DataFrame, cols: list[str]) -> None:
    missing = [c for c in cols if c not in summary.columns]
    if missing:
        raise MissingColumnError(f"The plot needs summary column(s) {missing} (from summarize()).")


def _label(row: pd.Series) -> str:
    return str(row["design"]) if "design" in row else design_label(row.to_dict(), [])


def plot_bias_vs_t(summary: pd.DataFrame, term: str, *, persistence: float | None = None, ax=None):
    """Bias in ``term`` against the number of weeks, one line per method, with Nickell's formula overlaid.

    Only designs that differ in T alone are drawn: those with one persistence (the grid's most common
    unless ``persistence`` is given), the largest effect, and the first design per T. The subtitle says
    which and how many of the grid's designs are shown.
    """
    _need(summary, ["term", "method", "bias", "bias_mcse", "n_weeks", "design_id"])
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    s = summary[summary["term"] == term]
    n_designs = s["design_id"].nunique()
    kept = []
    if "persistence" in s:
        if persistence is None:  # the most common persistence of the grid's designs
            persistence = float(s["persistence"].astype(float).mode().iloc[0])
        s = s[np.isclose(s["persistence"].astype(float), persistence)]
        kept.append(f"beta={persistence:g}")
    if "effect" in s and s["effect"].nunique() > 1:
        s = s[s["effect"] == s["effect"].max()]
        kept.append(f"effect={s['effect'].max():g}")
    # keep designs that differ only in T (the first design per T)
    s = s[s["design_id"].isin(s.drop_duplicates("n_weeks")["design_id"])]
    for method, g in s.groupby("method"):
        g = (
            g.groupby("n_weeks", as_index=False)
            .agg(bias=("bias", "mean"), mcse=("bias_mcse", "mean"))
            .sort_values("n_weeks")
        )
        ax.errorbar(g["n_weeks"], g["bias"], yerr=2 * g["mcse"], marker="o", capsize=3, label=method)
    if term.startswith("L1.") and len(s):
        beta = float(s["truth"].iloc[0])
        T = np.linspace(s["n_weeks"].min(), s["n_weeks"].max(), 100)
        ax.plot(T, [nickell_bias(beta, t - 1) for t in T], "k--", label=f"Nickell formula, beta={beta:g} (within)")
    ax.axhline(0, color="grey", lw=0.8)
    shown = s["design_id"].nunique()
    note = f"{shown} of {n_designs} designs" + (f": {', '.join(kept)}" if kept else "")
    ax.set(xlabel="weeks T", ylabel=f"bias in {term} (±2 MCSE)")
    ax.set_title(f"Bias in {term} against T\n{note}", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def coverage_limits(values, mcse, level: float, band: float) -> tuple[float, float]:
    """x-limits that hold every coverage with its ±2 MCSE bar and the nominal band, within [0, 1]."""
    v, e = np.asarray(values, dtype=float), np.asarray(mcse, dtype=float)
    ok = np.isfinite(v)
    lo = min([level - band, *(v[ok] - 2 * np.nan_to_num(e[ok]))])
    hi = max([level + band, *(v[ok] + 2 * np.nan_to_num(e[ok]))])
    pad = 0.05 * (hi - lo) + 0.005
    return max(lo - pad, 0.0), min(hi + pad, 1.0)


def plot_coverage(summary: pd.DataFrame, term: str, *, level: float = 0.90, ax=None):
    """Coverage of ``level`` intervals per method and design, with the nominal level's Monte Carlo band.

    The axis zooms to the data and the band (not 0 to 1), so a coverage of 0.86 against a nominal
    0.90 is visible; rows without a coverage (fewer than two successful fits) are listed in the title.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.plots import plot_coverage
    >>> s = pd.DataFrame({"term": "x", "method": ["a", "b"], "design": "T=8", "n": 400,
    ...                   "coverage90": [0.86, 0.91], "coverage90_mcse": [0.017, 0.014]})
    >>> [round(float(v), 2) for v in plot_coverage(s, "x").get_xlim()]  # not (0, 1): zoomed to the data
    [0.82, 0.95]
    """
    col = f"coverage{int(round(level * 100))}"
    _need(summary, ["term", "method", "n", col, f"{col}_mcse"])
    s = summary[summary["term"] == term]
    missing = s[s[col].isna()]
    s = s[s[col].notna()]
    ax = ax or plt.subplots(figsize=(8, 0.35 * len(s) + 1.5))[1]
    labels = [f"{r['method']} | {_label(r)}" for _, r in s.iterrows()]
    y = np.arange(len(s))
    ax.errorbar(s[col], y, xerr=2 * s[f"{col}_mcse"], fmt="o", capsize=3, label="coverage ±2 MCSE")
    n = int(s["n"].median()) if len(s) else 1
    band = 2 * np.sqrt(level * (1 - level) / max(n, 1))
    ax.axvspan(level - band, level + band, color="tab:green", alpha=0.15, label=f"nominal ±2 MCSE (n={n})")
    ax.axvline(level, color="tab:green")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlim(*coverage_limits(s[col], s[f"{col}_mcse"], level, band))
    ax.set(xlabel=f"coverage of {int(level * 100)}% intervals for {term} (axis zoomed to the data)")
    if len(missing):
        gone = ", ".join(f"{r['method']} | {_label(r)}" for _, r in missing.iterrows())
        ax.set_title(f"not shown (fewer than 2 successful fits): {gone}", fontsize=8)
    ax.legend(fontsize=8, loc="best")
    return ax


def plot_rmse(summary: pd.DataFrame, term: str, *, ax=None):
    """RMSE of ``term`` by method (mean over designs), with ±2 MCSE; the label says over how many designs."""
    _need(summary, ["term", "method", "rmse", "rmse_mcse", "design_id"])
    sub = summary[summary["term"] == term]
    s = sub.groupby("method").agg(rmse=("rmse", "mean"), mcse=("rmse_mcse", "mean"))
    s = s.sort_values("rmse")
    ax = ax or plt.subplots(figsize=(7, 0.4 * len(s) + 1.5))[1]
    ax.barh(s.index, s["rmse"], xerr=2 * s["mcse"], color="tab:blue", alpha=0.7, capsize=3)
    n_designs = sub["design_id"].nunique()
    ax.set(xlabel=f"RMSE of {term}, mean over {n_designs} designs (±2 MCSE)", title="Accuracy by method")
    return ax
