"""The paper's figures, each drawn (or copied, when a benchmark script draws it) from results files.

Every function takes its inputs and an output folder, writes PNG files there and returns ``{name: path}``;
``paper/build.py`` records, for each, the function that made it, its inputs and its run time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from paper_numbers import nickell, with_design_labels


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    return path


def speed(estimators: dict, reml: dict, bayes: dict, out: Path) -> dict[str, Path]:
    """Speed ratios against peer tools (peer time / causalcts time; ESS per second for NUTS), log scale."""
    labels, ratios, bounds = [], [], []
    g = estimators.get("diff_gmm_2000x104")
    if g and "speedup" in g:
        labels.append("difference GMM vs pydynpd")
        ratios.append(g["speedup"])
        bounds.append(False)
    w = estimators.get("within_2000x260")
    if w:
        labels += ["within vs pyfixest", "within vs linearmodels"]
        ratios += [w["speedup"], w["speedup_vs_linearmodels"]]
        bounds += [False, False]
    if reml:
        labels.append("REML vs statsmodels")
        ratios.append(reml["speedup"])
        bounds.append(False)
    i = bayes.get("integrated")
    naive = [bayes.get(k, {}) for k in ("naive_noncentred", "naive_centred")]
    timeouts = [n for n in naive if "error" in n and "draws" in n]
    if i and timeouts:
        labels.append("NUTS mixed vs naive PyMC (lower bound)")
        ratios.append((i["min_ess_bulk"] / i["fit_seconds"]) / max(4 * n["draws"] / n["fit_seconds"] for n in timeouts))
        bounds.append(True)
    fig = Figure(figsize=(7, 0.45 * len(labels) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(labels))
    ax.barh(y, ratios, color=["#8c6bb1" if b else "#2b8cbe" for b in bounds])
    ax.set_xscale("log")
    ax.axvline(1, color="black", lw=0.8)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    for yi, r, b in zip(y, ratios, bounds, strict=True):
        ax.text(r, yi, f" {'≥ ' if b else ''}{r:.3g}×", va="center", fontsize=8)
    ax.set_xlabel("peer time / causalcts time (log scale; 1 = same speed)")
    return {"speed": _save(fig, out / "speed.png")}


def nickell_curve(beta: float, periods: int, within_bias: float | None, within_mcse: float | None, out: Path,
                  betas: tuple[float, ...] = ()) -> dict[str, Path]:  # fmt: skip
    """Nickell's bias of the within estimator against the number of periods, with the grid's estimate."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    t = np.arange(4, 61)
    for b in sorted({beta, *betas}):
        exact = [nickell(b, int(k))[0] for k in t]
        ax.plot(t, exact, label=f"exact, β = {b:g}")
    ax.plot(t, [nickell(beta, int(k))[1] for k in t], "k:", label=f"first order −(1+β)/(T−1), β = {beta:g}")
    if within_bias is not None:
        ax.errorbar([periods], [within_bias], yerr=[2 * (within_mcse or 0)], fmt="o", color="crimson",
                    label="within estimator, headline grid (±2 MCSE)")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.6)
    ax.set(xlabel="periods in the regression", ylabel="bias of the persistence estimate")
    ax.legend(fontsize=7)
    return {"nickell": _save(fig, out / "nickell.png")}


def recovery(summary: pd.DataFrame, prefix: str, out: Path) -> dict[str, Path]:
    """Coverage of 90 percent intervals and RMSE by method, per term (causalcts.plots)."""
    from causalcts.plots import plot_coverage, plot_rmse

    summary = with_design_labels(summary)
    paths = {}
    for term in sorted(summary["term"].unique()):
        safe = term.replace(".", "_")
        n = len(summary[summary["term"] == term])
        fig = Figure(figsize=(7, 0.28 * n + 1.6))
        plot_coverage(summary, term, ax=fig.subplots())
        paths[f"{prefix}_coverage_{safe}"] = _save(fig, out / f"{prefix}_coverage_{safe}.png")
        fig = Figure(figsize=(7, 2.8))
        plot_rmse(summary, term, ax=fig.subplots())
        paths[f"{prefix}_rmse_{safe}"] = _save(fig, out / f"{prefix}_rmse_{safe}.png")
    return paths


def exogeneity(summary: pd.DataFrame, crit: dict, out: Path) -> dict[str, Path]:
    """Exogeneity grid: bias (two MCSEs) and 90 percent coverage (two MCSEs) by design and method, per term.

    ``summary`` is :func:`paper_numbers.exog_summary`'s (a ``dname`` column, in the grid's order); the
    recommended method of each design is drawn as a larger, ringed marker; the criteria's bands are shaded.
    """
    from paper_numbers import METHOD_NAMES

    designs = list(dict.fromkeys(summary["dname"]))
    methods = list(dict.fromkeys(summary["method"]))
    colours = ["#969696", "#2b8cbe", "#74a9cf", "#d95f0e", "#fe9929", "#31a354", "#756bb1", "#e7298a"]
    width = 0.8 / len(methods)
    lo, hi = crit["coverage90_band"]
    paths = {}
    for term in dict.fromkeys(summary["term"]):
        s = summary[summary["term"] == term]
        # the bias axis spans the estimates whose Monte Carlo SE is small; an estimate beyond it is marked at the edge
        steady = s[2 * s["bias_mcse"] < 0.05]
        lim = 1.15 * float((steady["bias"].abs() + 2 * steady["bias_mcse"]).max()) if len(steady) else 1.0
        fig = Figure(figsize=(7.2, 5.2))
        ax_b, ax_c = fig.subplots(2, 1, sharex=True)
        for j, m in enumerate(methods):
            r = s[s["method"] == m].set_index("dname").reindex(designs)
            x = np.arange(len(designs)) + (j - (len(methods) - 1) / 2) * width
            kw = dict(fmt="o", ms=4, color=colours[j % len(colours)], capsize=2, lw=1)
            bias, err = r["bias"].to_numpy(float), 2 * r["bias_mcse"].to_numpy(float)
            off = np.abs(bias) > lim  # off the scale: an arrow at the edge, with the value
            ax_b.errorbar(x[~off], bias[~off], yerr=err[~off], label=METHOD_NAMES.get(m, m), **kw)
            for xi, b in zip(x[off], bias[off], strict=True):
                edge = np.sign(b) * lim * 0.97
                ax_b.plot([xi], [edge], marker="^" if b > 0 else "v", color=kw["color"], ms=6)
                ax_b.annotate(f"{b:.2f}", (xi, edge), xytext=(3, -10 if b > 0 else 4), textcoords="offset points",
                              fontsize=6, color=kw["color"])  # fmt: skip
            ax_c.errorbar(x, r["coverage90"], yerr=2 * r["coverage90_mcse"], **kw)
            if term == crit["effect_term"]:
                bias = np.clip(r["bias"].to_numpy(float), -lim, lim)
                rec = [d == designs[i] and crit["recommended"].get(d) == m for i, d in enumerate(designs)]
                if any(rec):
                    for ax, y in ((ax_b, bias), (ax_c, r["coverage90"].to_numpy(float))):
                        ax.scatter(x[rec], y[rec], s=110, facecolors="none", edgecolors="black", lw=1.2, zorder=5)
        ax_b.axhline(0, color="black", lw=0.7)
        ax_b.set_ylim(-lim, lim)
        if term == crit["effect_term"]:
            b = crit["bias_abs_max"]
            ax_b.axhspan(-b, b, color="#31a354", alpha=0.12, lw=0, label=f"criterion |bias| < {b:g}")
            ax_c.axhspan(lo, hi, color="#31a354", alpha=0.12, lw=0)
        ax_c.axhline(0.9, color="black", lw=0.7, ls="--")
        ax_b.set_ylabel(f"bias of {term}\n(± 2 MCSE)")
        ax_c.set_ylabel("coverage of 90% intervals\n(± 2 MCSE)")
        ax_c.set_ylim(max(0, min(0.5, float(s["coverage90"].min()) - 0.05)), 1.0)
        for ax in (ax_b, ax_c):
            for k in range(1, len(designs)):
                ax.axvline(k - 0.5, color="grey", lw=0.4)
            ax.grid(axis="y", lw=0.3, alpha=0.5)
        ax_c.set_xticks(np.arange(len(designs)), designs)
        ax_b.legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        name = f"exog_{term.replace('.', '_')}"
        paths[name] = _save(fig, out / f"{name}.png")
    return paths


def copy(sources: dict[str, Path], out: Path) -> dict[str, Path]:
    """Figures drawn by another script (benchmarks/sbc.py, causalcts analyze): copied under the paper's names."""
    paths = {}
    for name, src in sources.items():
        if src.exists():
            paths[name] = Path(shutil.copy(src, out / f"{name}.png"))
    return paths
