"""Write the summary table, markdown and figures of a recovery study folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from causalcts.evaluation.montecarlo import load_results, summarize, summary_markdown, summary_table

__all__ = ["report_text", "run_timing", "write_report"]


def report_text(summary: pd.DataFrame, *, grid: dict | None = None) -> str:
    """The summary as plain text, one table per term: design, method, truth, mean, bias, RMSE, coverage.

    Every measure is shown as ``estimate (Monte Carlo SE)``.
    """
    grid = grid or {}
    lines = []
    if grid:
        lines.append(
            f"Recovery study {grid.get('name', '')!r}: {len(grid.get('designs', []))} designs x "
            f"{grid.get('replications', '?')} replications; model {grid.get('formula', '')}"
        )
    shared = summary.attrs.get("shared", "")
    if shared:
        lines.append(f"All designs: {shared}.")
    lines.append("Each measure: estimate (Monte Carlo SE). truth: the simulated value of the term.")
    for term, s in summary.groupby("term", sort=False):
        lines += ["", f"{term}", summary_table(s).drop(columns="term").to_string(index=False)]
    first = summary[summary["term"] == summary["term"].iloc[0]] if len(summary) else summary
    failed = int(first["n_failed"].sum()) if "n_failed" in first else 0
    if failed:
        lines += ["", f"{failed} fits failed ('+k failed' in n); their errors are in the results' error column."]
    return "\n".join(lines)


def run_timing(out_dir: str | Path, results: pd.DataFrame | None = None) -> dict:
    """How long a recovery study took, from its folder: what ``timing.json`` holds.

    ``fit_seconds`` sums the ``seconds`` the cells recorded for each fit (one per design, replication and
    method): each fit's own wall time in its worker, summed over the workers (not the CPU time: a sampler's
    chains may run in threads). ``runs`` copies ``runs.json``, which
    :func:`causalcts.evaluation.montecarlo.run_grid` appends to at the end of each invocation (wall time,
    cells, engine, workers); ``wall_seconds`` is their sum, ``None`` where the folder has no such log (cells
    from causalcts 0.2.0 before the log existed). ``cell_write_span_seconds`` is the time from the first
    cell file written to the last: the wall time of an uninterrupted run less the time to the first cell.
    """
    out = Path(out_dir)
    results = load_results(out) if results is None else results
    fits = results.drop_duplicates(["design_id", "replication", "method"])
    files = sorted((out / "cells").glob("*.parquet"))
    mtimes = [f.stat().st_mtime for f in files]
    runs_file = out / "runs.json"
    runs = json.loads(runs_file.read_text()) if runs_file.exists() else []
    return {
        "cells": len(files),
        "fits": len(fits),
        "fit_seconds": round(float(fits["seconds"].sum()), 1),
        "fit_seconds_by_method": {m: round(float(v), 1) for m, v in fits.groupby("method")["seconds"].sum().items()},
        "cell_write_span_seconds": round(max(mtimes) - min(mtimes), 1) if mtimes else None,
        "wall_seconds": round(sum(r["wall_seconds"] for r in runs), 1) if runs else None,
        "runs": runs,
    }


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def write_report(out_dir: str | Path) -> dict[str, Path]:
    """Summarise ``out_dir``'s results; write ``summary.parquet``, ``summary.md``, ``summary.txt``,
    ``timing.json`` (:func:`run_timing`) and PNGs.

    Figures are drawn on :class:`matplotlib.figure.Figure` objects, not through pyplot, so no window
    opens and the session's backend is left alone.
    """
    from causalcts.plots import plot_bias_vs_t, plot_coverage, plot_rmse

    out = Path(out_dir)
    results = load_results(out)
    summary = summarize(results)
    grid_file = out / "grid.json"
    grid = json.loads(grid_file.read_text()) if grid_file.exists() else {}
    paths = {
        "summary": out / "summary.parquet",
        "markdown": out / "summary.md",
        "text": out / "summary.txt",
        "timing": out / "timing.json",
    }
    summary.to_parquet(paths["summary"], index=False)
    paths["timing"].write_text(json.dumps(run_timing(out, results), indent=2) + "\n")
    paths["markdown"].write_text(summary_markdown(summary) + "\n")
    paths["text"].write_text(report_text(summary, grid=grid) + "\n")
    for term in summary["term"].unique():
        safe = term.replace(".", "_")
        if "n_weeks" in summary and summary["n_weeks"].nunique() > 1:
            fig = Figure(figsize=(7, 4))
            plot_bias_vs_t(summary, term, ax=fig.subplots())
            paths[f"bias_{safe}"] = _save(fig, out / f"bias_vs_T_{safe}.png")
        fig = Figure(figsize=(8, 0.3 * len(summary[summary["term"] == term]) + 1.5))
        plot_coverage(summary, term, ax=fig.subplots())
        paths[f"coverage_{safe}"] = _save(fig, out / f"coverage_{safe}.png")
        fig = Figure(figsize=(7, 3))
        plot_rmse(summary, term, ax=fig.subplots())
        paths[f"rmse_{safe}"] = _save(fig, out / f"rmse_{safe}.png")
    return paths
