"""Figures of a Monte Carlo recovery study (input: :func:`causalcts.evaluation.montecarlo.summarize`)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from causalcts.estimators.bias import nickell_bias  # noqa: E402

__all__ = ["plot_bias_vs_t", "plot_coverage", "plot_rmse"]


def plot_bias_vs_t(summary: pd.DataFrame, term: str, *, persistence: float | None = None, ax=None):
    """Bias in ``term`` against the number of weeks, one line per method, with Nickell's formula overlaid."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    s = summary[summary["term"] == term]
    if "persistence" in s:
        if persistence is None:  # the most common persistence of the grid's designs
            persistence = float(s["persistence"].astype(float).mode().iloc[0])
        s = s[np.isclose(s["persistence"].astype(float), persistence)]
    if "effect" in s and s["effect"].nunique() > 1:
        s = s[s["effect"] == s["effect"].max()]
    # keep designs that differ only in T (the first design per T)
    s = s[s["design_id"].isin(s.drop_duplicates("n_weeks")["design_id"])] if "n_weeks" in s else s
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
    ax.set(xlabel="weeks T", ylabel=f"bias in {term} (±2 MCSE)", title=f"Bias in {term} against T")
    ax.legend(fontsize=8)
    return ax


def plot_coverage(summary: pd.DataFrame, term: str, *, level: float = 0.90, ax=None):
    """Coverage of ``level`` intervals per method and design, with the nominal level's Monte Carlo band."""
    col = f"coverage{int(round(level * 100))}"
    s = summary[summary["term"] == term].copy()
    ax = ax or plt.subplots(figsize=(8, 0.35 * len(s) + 1.5))[1]
    labels = [
        f"{r['method']} | T={r.get('n_weeks', '')} beta={r.get('persistence', '')} effect={r.get('effect', '')}"
        for _, r in s.iterrows()
    ]
    y = np.arange(len(s))
    ax.errorbar(s[col], y, xerr=2 * s[f"{col}_mcse"], fmt="o", capsize=3)
    n = int(s["n"].median()) if len(s) else 1
    band = 2 * np.sqrt(level * (1 - level) / max(n, 1))
    ax.axvspan(level - band, level + band, color="tab:green", alpha=0.15, label=f"nominal ±2 MCSE (n={n})")
    ax.axvline(level, color="tab:green")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set(xlabel=f"coverage of {int(level * 100)}% intervals for {term}", xlim=(-0.02, 1.02))
    ax.legend(fontsize=8, loc="lower left")
    return ax


def plot_rmse(summary: pd.DataFrame, term: str, *, ax=None):
    """RMSE of ``term`` by method (mean over designs), with ±2 MCSE."""
    s = summary[summary["term"] == term].groupby("method").agg(rmse=("rmse", "mean"), mcse=("rmse_mcse", "mean"))
    s = s.sort_values("rmse")
    ax = ax or plt.subplots(figsize=(7, 0.4 * len(s) + 1.5))[1]
    ax.barh(s.index, s["rmse"], xerr=2 * s["mcse"], color="tab:blue", alpha=0.7, capsize=3)
    ax.set(xlabel=f"RMSE of {term} (mean over designs)", title="Accuracy by method")
    return ax
