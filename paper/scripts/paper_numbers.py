"""Every number and table of the paper, read from results files (``paper/build.py`` calls :func:`collect`).

Nothing here is typed by hand: each value is read from a JSON or Parquet file of results, from a grid or criteria
TOML written before the run, from the method registry, or computed from those (the Nickell formula, ratios). Each
number group records the file it came from, so ``paper/REPRODUCE.md`` can say where every number comes from.

Numbers are strings, already formatted (the manuscript prints them as they are); flags are booleans that switch
text on what exists (for example whether the paper grid has been run).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Methods of the recovery grids as the paper names them (labels only, no numbers).
METHOD_NAMES = {
    "within": "within (FE)",
    "bias-corrected": "bias-corrected FE",
    "jackknife": "half-panel jackknife",
    "diff-gmm": "difference GMM",
    "sys-gmm": "system GMM",
    "sys-gmm-pre": "system GMM (share predetermined)",
    "ml": "ML-SEM",
    "ml-pre": "ML-SEM (share predetermined)",
    "bayes": "Bayesian dynamic panel",
}


def fx(v: float, digits: int = 3) -> str:
    """A float with ``digits`` decimals; the minus sign of a negative number as a true minus."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    s = f"{v:.{digits}f}"
    return s.replace("-", "\u2212") if s.startswith("-") else s


def fint(v: float) -> str:
    """An integer with thousands separators."""
    return f"{round(v):,}"


def fsig(v: float, sig: int = 2) -> str:
    """A number with ``sig`` significant digits, scientific notation for tiny values (``3e-11``)."""
    if v == 0:
        return "0"
    if abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("-", "\u2212")
    return f"{v:.{sig}g}"


@dataclass
class Collected:
    """What :func:`collect` returns: numbers, flags, tables and where each group came from."""

    values: dict[str, str] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def put(self, group: str, inputs: list[Path], script: str, values: dict[str, str]) -> None:
        for k, v in values.items():
            self.values[f"{group}.{k}"] = v
        src = self.sources.setdefault(group, {"inputs": [], "script": script, "keys": 0})
        src["inputs"] = sorted({*src["inputs"], *(str(p) for p in inputs)})
        src["keys"] += len(values)

    def table(self, name: str, columns: list[str], rows: list[list[str]], inputs: list[Path], script: str) -> None:
        self.tables[name] = {"columns": columns, "rows": rows}
        self.sources[f"table:{name}"] = {"inputs": [str(p) for p in inputs], "script": script, "keys": len(rows)}


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


# --------------------------------------------------------------------------------------------------- benchmarks
def speed(c: Collected, res: Path) -> None:
    """Speed against peers: benchmarks/results/{estimators,reml,bayes,gpu,mlsem}.json."""
    script = "paper/scripts/paper_numbers.py:speed"
    rows: list[list[str]] = []
    est_path = res / "estimators.json"
    est = _load(est_path)
    g = est.get("diff_gmm_2000x104")
    if g:
        o, p = g["ours"], g["pydynpd"]
        c.put(
            "gmm",
            [est_path],
            script,
            {
                "teams": fint(2000),
                "weeks": fint(104),
                "ours_s": fx(o["seconds"], 2),
                "ours_mb": fint(o["peak_rss_mb"]),
                "peer_s": fx(p["seconds"], 1),
                "peer_mb": fint(p["peak_rss_mb"]),
                "speedup": fx(g["speedup"], 1),
                "param_diff": fsig(g["max_abs_param_diff"]),
                "instruments": fint(o["n_instruments"]),
            },
        )
        rows.append(
            [
                "difference GMM, 2,000 × 104",
                f"{fx(o['seconds'], 2)} s",
                f"pydynpd {fx(p['seconds'], 1)} s",
                f"{fx(g['speedup'], 1)}×",
            ]
        )
    w = est.get("within_2000x260")
    if w:
        c.put(
            "within",
            [est_path],
            script,
            {
                "ours_s": fx(w["ours"]["seconds"], 3),
                "pyfixest_s": fx(w["pyfixest"]["seconds"], 3),
                "pyfixest_ratio": fx(w["speedup"], 2),
                "linearmodels_s": fx(w["linearmodels"]["seconds"], 1),
                "linearmodels_ratio": fx(w["speedup_vs_linearmodels"], 0),
                "param_diff": fsig(w["max_abs_param_diff"]),
            },
        )
        rows.append(
            [
                "within/TWFE, 2,000 × 260",
                f"{fx(w['ours']['seconds'], 3)} s",
                f"pyfixest {fx(w['pyfixest']['seconds'], 3)} s",
                f"{fx(w['speedup'], 2)}×",
            ]
        )
        rows.append(
            [
                "within/TWFE, 2,000 × 260",
                f"{fx(w['ours']['seconds'], 3)} s",
                f"linearmodels {fx(w['linearmodels']['seconds'], 1)} s",
                f"{fx(w['speedup_vs_linearmodels'], 0)}×",
            ]
        )
    r_path = res / "reml.json"
    r = _load(r_path)
    if r:
        c.put(
            "reml",
            [r_path],
            script,
            {
                "teams": fint(r["teams"]),
                "weeks": fint(r["weeks"]),
                "ours_s": fx(r["causalcts_seconds"], 2),
                "peer_s": fx(r["statsmodels_seconds"], 1),
                "speedup": fx(r["speedup"], 1),
                "param_diff": fsig(r["max_abs_param_diff"]),
            },
        )
        rows.append(
            [
                f"REML, {fint(r['teams'])} × {fint(r['weeks'])}",
                f"{fx(r['causalcts_seconds'], 2)} s",
                f"statsmodels {fx(r['statsmodels_seconds'], 1)} s",
                f"{fx(r['speedup'], 1)}×",
            ]
        )
    b_path = res / "bayes.json"
    b = _load(b_path)
    if b.get("integrated"):
        i, d = b["integrated"], b.get("dynamic", {})
        naive = [b.get(k, {}) for k in ("naive_noncentred", "naive_centred")]
        timeouts = [n for n in naive if "error" in n and "draws" in n]
        bound = ""
        if timeouts:
            best_naive = max(4 * n["draws"] / n["fit_seconds"] for n in timeouts)
            bound = fx((i["min_ess_bulk"] / i["fit_seconds"]) / best_naive, 0)
        vals = {
            "teams": fint(b["teams"]),
            "weeks": fint(b["weeks"]),
            "rows": fint(b["teams"] * b["weeks"]),
            "mixed_s": fx(i["fit_seconds"], 1),
            "mixed_ess": fint(i["min_ess_bulk"]),
            "mixed_rhat": fx(i["max_rhat"], 2),
            "dynamic_s": fx(d.get("fit_seconds", float("nan")), 1),
            "dynamic_ess": fint(d.get("min_ess_bulk", 0)),
            "dynamic_rhat": fx(d.get("max_rhat", float("nan")), 2),
            "naive_timeout_s": fint(timeouts[0]["fit_seconds"]) if timeouts else "n/a",
            "naive_draws": fint(timeouts[0]["draws"]) if timeouts else "n/a",
            "ratio_bound": bound or "n/a",
        }
        for k, v in i.get("params", {}).items():
            vals[f"mixed_param.{k}"] = fx(v, 3)
        c.put("bayes", [b_path], script, vals)
        c.flags["bayes_naive_timed_out"] = bool(timeouts)
        rows.append(
            [
                f"NUTS mixed model, {fint(b['teams'])} × {fint(b['weeks'])}",
                f"{fx(i['fit_seconds'], 1)} s (min ESS {fint(i['min_ess_bulk'])})",
                "naive PyMC: " + (f"not done in {fint(timeouts[0]['fit_seconds'])} s" if timeouts else "see JSON"),
                f"≥ {bound}× ESS/s" if bound else "n/a",
            ]
        )
    gpu_path = res / "gpu.json"
    gpu = _load(gpu_path)
    if gpu:
        vals = {}
        for key, v in gpu.items():
            if isinstance(v, dict) and "seconds" in v:
                vals[f"{key}.rows"] = fint(v["rows"])
                vals[f"{key}.s"] = fx(v["seconds"], 0)
                vals[f"{key}.ess"] = fint(v["min_ess_bulk"])
        c.put("gpu", [gpu_path], script, vals)
    m_path = res / "mlsem.json"
    m = _load(m_path)
    if m:
        c.put(
            "mlsem",
            [m_path],
            script,
            {
                "teams": fint(m["n_teams"]),
                "weeks": fint(m["n_weeks"]),
                "s": fx(m["seconds_robust"], 0),
                "params": fint(m["n_params"]),
            },
        )
        c.flags["mlsem_converged"] = bool(m.get("converged"))
    c.table(
        "speed",
        ["benchmark", "causalcts", "peer", "ratio (peer / causalcts)"],
        rows,
        [p for p in (est_path, r_path, b_path) if p.exists()],
        script,
    )


# --------------------------------------------------------------------------------------------------------- SBC
def sbc(c: Collected, sbc_json: Path) -> None:
    """Simulation-based calibration: p-values of rank uniformity (benchmarks/results/sbc.json)."""
    script = "paper/scripts/paper_numbers.py:sbc"
    s = _load(sbc_json)
    rows, pvals, vals = [], [], {}
    for model, label in (("mixed", "mixed model"), ("dynamic", "dynamic panel")):
        if model not in s:
            continue
        d, u = s[model]["design"], s[model]["uniformity"]
        size = (
            f"{d['n_groups']} groups × {d['n_per_group']}"
            if model == "mixed"
            else f"{d['n_teams']} teams × {d['n_weeks']} weeks"
        )
        vals.update(
            {
                f"{model}.sims": fint(d["n_sims"]),
                f"{model}.size": size,
                f"{model}.seconds": fx(s[model]["seconds"], 0),
                f"{model}.converged_share": fx(d.get("converged_share", float("nan")), 2),
                f"{model}.seed": str(d.get("seed", "n/a")),
            }
        )
        for q, r in u.items():
            pvals.append(r["pvalue"])
            rows.append([label, size, q, fx(r["pvalue"], 3)])
    if pvals:
        n, lo = len(pvals), min(pvals)
        vals.update(
            {
                "tests": fint(n),
                "min_p": fx(lo, 3),
                # chance that the smallest of n independent uniform p-values is at most lo
                "min_p_chance": fx(1 - (1 - lo) ** n, 2),
                "bins": fint(next(iter(next(iter(s.values()))["uniformity"].values()))["df"] + 1),
            }
        )
    c.put("sbc", [sbc_json], script, vals)
    c.table("sbc", ["model", "size", "quantity", "p-value"], rows, [sbc_json], script)


# ------------------------------------------------------------------------------------------------ recovery grids
def nickell(beta: float, periods: int) -> tuple[float, float]:
    """Nickell's (1981) asymptotic bias of the within estimator of an AR(1): exact and first order.

    ``periods`` is the number of periods in the regression (T - 1 with a lagged outcome).
    """
    t = periods
    a = 1 - (1 - beta**t) / (t * (1 - beta))
    exact = -((1 + beta) / (t - 1)) * a / (1 - 2 * beta / ((1 - beta) * (t - 1)) * a)
    return exact, -(1 + beta) / (t - 1)


def _summary_rows(summary: pd.DataFrame, methods_order: list[str]) -> list[list[str]]:
    rows = []
    order = {m: i for i, m in enumerate(methods_order)}
    by = "design_no" if "design_no" in summary else "design"
    s = summary.assign(_o=summary["method"].map(order).fillna(99)).sort_values([by, "_o", "term"])
    for _, r in s.iterrows():
        rows.append(
            [
                str(r["design"]),
                METHOD_NAMES.get(r["method"], r["method"]),
                str(r["term"]),
                f"{fx(r['bias'], 4)} ({fx(r['bias_mcse'], 4)})",
                f"{fx(r['rmse'], 4)} ({fx(r['rmse_mcse'], 4)})",
                f"{fx(r['coverage90'], 3)} ({fx(r['coverage90_mcse'], 3)})",
                f"{fx(r['coverage95'], 3)} ({fx(r['coverage95_mcse'], 3)})",
            ]
        )
    return rows


SUMMARY_COLUMNS = ["design", "method", "term", "bias (MCSE)", "RMSE (MCSE)", "cover 90% (MCSE)", "cover 95% (MCSE)"]


def with_design_labels(summary: pd.DataFrame) -> pd.DataFrame:
    """Add the readable ``design`` column (as ``causalcts.evaluation.montecarlo.summarize`` does) when absent."""
    if "design" in summary.columns:
        return summary
    from causalcts.evaluation.montecarlo import design_label

    knobs = [k for k in ("n_teams", "n_weeks", "persistence", "effect", "selection", "feedback") if k in summary]
    designs = summary.drop_duplicates("design_id").set_index("design_id")[knobs]
    varying = [k for k in knobs if designs[k].astype(str).nunique() > 1] or knobs
    labels = {did: design_label(row.to_dict(), varying) for did, row in designs.iterrows()}
    return summary.assign(design=summary["design_id"].map(labels))


def headline(c: Collected, folder: Path, criteria: dict) -> None:
    """The headline recovery grid (summary.parquet, grid.json) against the criteria written before the run."""
    script = "paper/scripts/paper_numbers.py:headline"
    summ_path, grid_path = folder / "summary.parquet", folder / "grid.json"
    summary = with_design_labels(pd.read_parquet(summ_path))
    grid = _load(grid_path)
    design = grid["designs"][0]
    vals = {
        "teams": fint(design["n_teams"]),
        "weeks": fint(design["n_weeks"]),
        "persistence": fx(design["persistence"], 1),
        "effect": fx(design["effect"], 1),
        "reps": fint(grid["replications"]),
        "seed": str(grid["seed"]),
        "methods": fint(len(grid["methods"])),
    }
    bayes = grid["methods"].get("bayes", {})
    vals.update({"bayes_chains": fint(bayes.get("chains", 0)), "bayes_draws": fint(bayes.get("draws", 0))})
    for _, r in summary.iterrows():
        k = f"{r['method']}.{r['term']}"
        for m in ("bias", "bias_mcse", "emp_se", "model_se", "rmse", "rmse_mcse"):
            vals[f"{k}.{m}"] = fx(r[m], 4)
        for m in ("coverage90", "coverage90_mcse", "coverage95", "coverage95_mcse"):
            vals[f"{k}.{m}"] = fx(r[m], 3)
        vals[f"{k}.converged_share"] = fx(r["converged_share"], 2)
        vals[f"{k}.unconverged_pct"] = fint(100 * (1 - r["converged_share"]))
        vals[f"{k}.seconds"] = fx(r["seconds"], 2)
    # the recommended method against the criteria of paper/criteria.toml
    rec, term = criteria["recommended_method"], criteria["effect_term"]
    row = summary[(summary["method"] == rec) & (summary["term"] == term)].iloc[0]
    ratio = abs(row["bias"]) / row["emp_se"]
    lo90, hi90 = row["coverage90"] - 1.96 * row["coverage90_mcse"], row["coverage90"] + 1.96 * row["coverage90_mcse"]
    band = criteria["coverage90_band"]
    vals.update(
        {
            "rec.bias_over_emp_se": fx(ratio, 3),
            "rec.cov90_lo": fx(lo90, 3),
            "rec.cov90_hi": fx(hi90, 3),
        }
    )
    c.flags["headline_bias_ok"] = bool(ratio < criteria["bias_over_emp_se_max"])
    c.flags["headline_coverage_ok"] = bool(band[0] <= lo90 and hi90 <= band[1])
    # the within estimator's persistence bias against Nickell's formula (T - 1 periods in the regression)
    beta, periods = float(design["persistence"]), int(design["n_weeks"]) - 1
    exact, first = nickell(beta, periods)
    w = summary[(summary["method"] == "within") & (summary["term"].str.startswith("L1."))]
    if len(w):
        wb, wm = float(w["bias"].iloc[0]), float(w["bias_mcse"].iloc[0])
        vals.update(
            {
                "nickell.periods": fint(periods),
                "nickell.exact": fx(exact, 4),
                "nickell.first": fx(first, 4),
                "nickell.diff": fx(abs(wb - exact), 4),
                "nickell.diff_mcse": fx(abs(wb - exact) / wm, 1),
            }
        )
    # CPU time of the run: the per-fit seconds summed over methods and replications
    per_cell = summary.drop_duplicates("method")["seconds"].sum()
    vals["cpu_minutes"] = fint(per_cell * grid["replications"] / 60)
    vals["cell_seconds"] = fx(per_cell, 2)
    c.put("headline", [summ_path, grid_path], script, vals)
    c.table(
        "headline",
        SUMMARY_COLUMNS,
        _summary_rows(summary, list(grid["methods"])),
        [summ_path, grid_path],
        script,
    )


def grid_designs(c: Collected, grid_toml: Path, name: str) -> None:
    """The designs and methods of a grid TOML (written before its results were seen)."""
    from causalcts.evaluation.montecarlo import design_label, load_grid

    script = "paper/scripts/paper_numbers.py:grid_designs"
    g = load_grid(grid_toml)
    rows = [[str(i + 1), design_label(d)] for i, d in enumerate(g.designs)]
    c.table(f"designs_{name}", ["design", "simulator settings"], rows, [grid_toml], script)
    vals = {
        "designs": fint(len(g.designs)),
        "reps": fint(g.replications),
        "methods": fint(len(g.methods)),
        "cells": fint(len(g.designs) * g.replications),
        "method_list": ", ".join(METHOD_NAMES.get(m, m) for m in g.methods),
        "seed": str(g.seed),
        "traps": ", ".join(
            sorted({k for d in g.designs for k, v in d.items() if k not in ("n_teams", "n_weeks", "effect") and v})
        ),
    }
    c.put(f"grid_{name}", [grid_toml], script, vals)


def study(c: Collected, folder: Path | None, name: str, methods: list[str], criteria: dict | None = None) -> None:
    """Results of a recovery grid beyond the headline (the paper grid or the quick grid), if they exist.

    Besides the full table: the run's time (``timing.json`` of ``causalcts bench report``), a verdict table
    that applies the criteria of ``paper/criteria.toml`` (written before the runs, for the headline's
    recommended method) descriptively to every method, design and term, and the numbers the text quotes
    for the designs that isolate one trap each.
    """
    script = "paper/scripts/paper_numbers.py:study"
    summ = folder / "summary.parquet" if folder else None
    c.flags[f"{name}_run"] = bool(summ and summ.exists())
    if not c.flags[f"{name}_run"]:
        return
    assert summ is not None and folder is not None
    summary = _numbered_designs(with_design_labels(pd.read_parquet(summ)), _load(folder / "grid.json"))
    c.table(f"study_{name}", SUMMARY_COLUMNS, _summary_rows(summary, methods), [summ], script)
    done = summary["n"] + summary["n_failed"] if "n_failed" in summary else summary["n"]  # replications run per row
    vals = {"rows": fint(len(summary)), "reps_min": fint(summary["n"].min()), "reps_run": fint(done.min())}
    inputs: list[Path] = [summ]
    timing_path = folder / "timing.json"
    if timing_path.exists():
        vals.update(_timing_values(_load(timing_path)))
        inputs.append(timing_path)
    c.flags[f"{name}_workers"] = "workers" in vals  # known from the run log only
    c.flags[f"{name}_timed"] = timing_path.exists()
    planned = _load(folder / "grid.json").get("replications")
    c.flags[f"{name}_complete"] = planned is not None and int(done.min()) >= int(planned)
    trap = summary
    for k in ("feedback", "selection"):
        if k in summary:
            trap = trap[trap[k].fillna(0).astype(float) > 0]
    if len(trap) < len(summary):
        w = trap[(trap["method"] == "within") & (trap["term"] == "ai_share")]
        if len(w):
            vals["trap.within.ai_share.bias"] = fx(w["bias"].iloc[0], 3)
            vals["trap.within.ai_share.cov95"] = fx(w["coverage95"].iloc[0], 2)
    if criteria is not None:
        judged = judge(summary, criteria)
        c.table(f"verdict_{name}", VERDICT_COLUMNS, _verdict_rows(judged, methods), [summ], script)
        vals.update(_trap_values(judged, c.flags, name))
    c.put(f"study_{name}", inputs, script, vals)


#: Short names of the trap designs (:func:`_trap_design`) for the tables.
TRAP_LABELS = {
    "null": "null effect",
    "feedback": "feedback",
    "selection": "selection",
    "selection_feedback": "selection + feedback",
    "messy": "counts, gaps, heterogeneity, mediator",
}


def _numbered_designs(summary: pd.DataFrame, grid: dict) -> pd.DataFrame:
    """Label each design by its number in the grid file (as in the designs table) and a short name, so that the
    tables stay narrow; the full settings are in the designs table."""
    from causalcts.evaluation.montecarlo import design_id

    number = {design_id(d): i + 1 for i, d in enumerate(grid.get("designs", []))}
    if not number or not set(summary["design_id"]) <= set(number):
        return summary
    rows = summary.drop_duplicates("design_id").set_index("design_id")
    labels = {}
    for did, r in rows.iterrows():
        trap = _trap_design(r)
        short = TRAP_LABELS.get(trap or "", "")
        if not short:
            short = f"T={int(r['n_weeks'])}"
            if pd.notna(r.get("persistence")):
                short += f", β={fsig(float(r['persistence']))}"
            if trap is None:
                short += ", selection = feedback = 0"
        labels[did] = f"{number[did]}: {short}"
    return summary.assign(design=summary["design_id"].map(labels), design_no=summary["design_id"].map(number))


def _timing_values(t: dict) -> dict[str, str]:
    """The run time of a grid from its ``timing.json``: wall time (the run log, or the span of cell writes)."""
    wall, source = t.get("wall_seconds"), "the run log (runs.json)"
    if wall is None:
        wall, source = t.get("cell_write_span_seconds"), "the span of the cells' write times"
    by = t.get("fit_seconds_by_method", {})
    workers = sorted({r["workers"] for r in t.get("runs", [])})
    vals = {
        "wall_minutes": fint(wall / 60) if wall is not None else "n/a",
        "wall_from": source,
        "fit_minutes": fint(t["fit_seconds"] / 60),
        "bayes_pct": fint(100 * by.get("bayes", 0.0) / t["fit_seconds"]) if t["fit_seconds"] else "n/a",
        "fits": fint(t["fits"]),
        "cells": fint(t["cells"]),
    }
    if workers:
        vals["workers"] = ", ".join(str(w) for w in workers)
    return vals


VERDICT_COLUMNS = ["design", "term", "consistent with the criteria", "clearly fail (b: bias, c: coverage)"]


def judge(summary: pd.DataFrame, criteria: dict) -> pd.DataFrame:
    """Each row of a summary against the criteria of ``paper/criteria.toml``, applied descriptively.

    ``bias_ok``: |bias| at most ``bias_over_emp_se_max`` empirical SEs. ``cov_out``: the 95 percent Monte Carlo
    interval of the 90 percent coverage lies wholly outside ``coverage90_band`` (with a few hundred replications
    the interval is too wide to lie wholly inside it, so the verdict is "clearly fails" or "consistent").
    """
    band = criteria["coverage90_band"]
    lo = summary["coverage90"] - 1.96 * summary["coverage90_mcse"]
    hi = summary["coverage90"] + 1.96 * summary["coverage90_mcse"]
    bias_ok = summary["bias"].abs() <= criteria["bias_over_emp_se_max"] * summary["emp_se"]
    cov_out = (hi < band[0]) | (lo > band[1])
    return summary.assign(bias_ok=bias_ok, cov_out=cov_out, consistent=bias_ok & ~cov_out)


def _verdict_rows(judged: pd.DataFrame, methods_order: list[str]) -> list[list[str]]:
    order = {m: i for i, m in enumerate(methods_order)}
    rows = []
    by = ["design_no", "design"] if "design_no" in judged else ["design"]
    for key, g in judged.groupby([*by, "term"], sort=True):
        design, term = key[-2], key[-1]
        g = g.assign(_o=g["method"].map(order).fillna(99)).sort_values("_o")
        ok = [METHOD_NAMES.get(m, m) for m in g.loc[g["consistent"], "method"]]
        bad = [
            f"{METHOD_NAMES.get(r.method, r.method)} ({'b' if not r.bias_ok else ''}{'c' if r.cov_out else ''})"
            for r in g[~g["consistent"]].itertuples()
        ]
        rows.append([str(design), str(term), ", ".join(ok) or "none", ", ".join(bad) or "none"])
    return rows


def _trap_design(row: pd.Series) -> str | None:
    """Name the designs of the paper grid that isolate one trap (None for the others)."""
    sel, fb = (float(row.get(k)) if pd.notna(row.get(k)) else 0.0 for k in ("selection", "feedback"))
    if pd.notna(row.get("outcome_model")) and row.get("outcome_model") == "count":
        return "messy"
    if sel > 0 and fb > 0:
        return "selection_feedback"
    if fb > 0:
        return "feedback"
    if sel > 0:
        return "selection"
    if pd.notna(row.get("selection")) or pd.notna(row.get("feedback")):
        return None  # the explicit "selection = 0, feedback = 0" twin of the headline design
    if float(row["effect"]) == 0.0:
        return "null"
    beta, weeks = float(row["persistence"]), int(row["n_weeks"])
    if beta == 0.5:
        return f"T{weeks}"
    return f"beta{str(beta).replace('0.', '')}"


def _trap_values(judged: pd.DataFrame, flags: dict[str, bool], name: str) -> dict[str, str]:
    """Numbers the text quotes per trap design: each method's bias, coverage, rejection and verdict lists."""
    vals: dict[str, str] = {}
    keys = {did: _trap_design(r) for did, r in judged.drop_duplicates("design_id").set_index("design_id").iterrows()}
    order = {m: i for i, m in enumerate(METHOD_NAMES)}
    j = judged.assign(trap=judged["design_id"].map(keys), _o=judged["method"].map(order).fillna(99))
    j = j.dropna(subset=["trap"]).sort_values(["trap", "term", "_o"], kind="stable")
    n_min = int(judged["n"].min())
    vals["cov_halfwidth"] = fx(1.96 * float(np.sqrt(0.9 * 0.1 / n_min)), 3)  # 95% MC half-width at 90% coverage
    for r in j.itertuples():
        k = f"{r.trap}.{r.method}.{r.term}"
        vals[f"{k}.bias"] = fx(r.bias, 3)
        vals[f"{k}.bias_mcse"] = fx(r.bias_mcse, 3)
        vals[f"{k}.coverage90"] = fx(r.coverage90, 2)
        vals[f"{k}.rejection"] = fx(r.rejection, 3)
        vals[f"{k}.unconverged_pct"] = fint(100 * (1 - r.converged_share))
        flags[f"{name}.{k}.ok"] = bool(r.consistent)

    for trap, g in j.groupby("trap", sort=False):
        r0 = g.iloc[0]
        vals[f"{trap}.weeks"] = fint(r0["n_weeks"])
        if pd.notna(r0.get("persistence")):
            vals[f"{trap}.persistence"] = fsig(float(r0["persistence"]))

    def names(ms) -> str:
        return ", ".join(METHOD_NAMES.get(m, m) for m in ms) or "none"

    for (trap, term), g in j.groupby(["trap", "term"], sort=False):
        vals[f"{trap}.{term}.consistent"] = names(g.loc[g["consistent"], "method"])
        vals[f"{trap}.{term}.fail"] = names(g.loc[~g["consistent"], "method"])
        flags[f"{name}_{trap}_{term.replace('.', '_')}_all_ok"] = bool(g["consistent"].all())
        vals[f"{trap}.{term}.n_fail"] = fint((~g["consistent"]).sum())
    # Nickell's formula beside the within estimator's persistence bias at each T of the plain designs
    plain = j["trap"].str.match(r"T\d+$")
    for r in j[(j["method"] == "within") & j["term"].str.startswith("L1.") & plain].itertuples():
        exact, _ = nickell(float(r.persistence), int(r.n_weeks) - 1)
        vals[f"{r.trap}.nickell_exact"] = fx(exact, 3)
    # size under the null: the rejection rates of all methods, lowest and highest
    null = j[(j["trap"] == "null") & (j["term"] == "ai_share")]
    if len(null):
        lo, hi = null.loc[null["rejection"].idxmin()], null.loc[null["rejection"].idxmax()]
        vals["null.rej_min"], vals["null.rej_min_method"] = fx(lo["rejection"], 3), names([lo["method"]])
        vals["null.rej_max"], vals["null.rej_max_method"] = fx(hi["rejection"], 3), names([hi["method"]])
        vals["null.rej_mcse"] = fx(float(np.sqrt(0.05 * 0.95 / null["n"].min())), 3)
    flags[f"{name}_traps"] = bool(len(j))
    return vals


def projection(c: Collected, paper_toml: Path, headline_folder: Path, workers: int = 2) -> None:
    """Projected time of the paper grid: its cells times the headline grid's per-fit seconds of the same methods."""
    from causalcts.evaluation.montecarlo import load_grid

    g = load_grid(paper_toml)
    summ = pd.read_parquet(headline_folder / "summary.parquet").drop_duplicates("method").set_index("method")
    timed = [m for m in g.methods if m in summ.index]
    per_cell = float(summ.loc[timed, "seconds"].sum())
    hours = len(g.designs) * g.replications * per_cell / workers / 3600
    c.put(
        "projection",
        [paper_toml, headline_folder / "summary.parquet"],
        "paper/scripts/paper_numbers.py:projection",
        {
            "hours": fx(hours, 1),
            "workers": fint(workers),
            "timed": ", ".join(METHOD_NAMES.get(m, m) for m in timed),
            "untimed": ", ".join(METHOD_NAMES.get(m, m) for m in g.methods if m not in timed) or "none",
            "bayes_share": fint(100 * float(summ.loc["bayes", "seconds"]) / per_cell) if "bayes" in timed else "n/a",
        },
    )


def criteria_values(c: Collected, path: Path) -> dict:
    """The success criteria of the simulation study (paper/criteria.toml, written before the runs)."""
    from causalcts.bayes.results import ESS_PER_CHAIN, RHAT_MAX

    crit = tomllib.loads(path.read_text())["criteria"]
    c.put(
        "criteria",
        [path, Path("causalcts/bayes/results.py")],
        "paper/scripts/paper_numbers.py:criteria_values",
        {
            "bias_over_emp_se_max": fx(crit["bias_over_emp_se_max"], 1),
            "cov90_lo": fx(crit["coverage90_band"][0], 2),
            "cov90_hi": fx(crit["coverage90_band"][1], 2),
            "mcse_cov90_target": fx(crit["coverage90_mcse_target"], 2),
            "level90": fint(100 * crit["levels"][0]),
            "level95": fint(100 * crit["levels"][1]),
            "size": fx(crit["nominal_size"], 2),
            "rhat_max": fx(RHAT_MAX, 2),
            "ess_min": fint(ESS_PER_CHAIN),
        },
    )
    return crit


# -------------------------------------------------------------------------------------------------- registry
def methods_table(c: Collected) -> None:
    """The estimators and what each assumes, generated from ``causalcts.registry``."""
    from causalcts import registry

    rows = [[m.name, m.family, m.description, m.assumes] for m in registry.REGISTRY.values()]
    c.table(
        "methods",
        ["method", "family", "what it is", "what it assumes"],
        rows,
        [Path("causalcts/registry.py")],
        "paper/scripts/paper_numbers.py:methods_table",
    )
    c.values["registry.count"] = fint(len(rows))
    c.values["registry.families"] = fint(len({m.family for m in registry.REGISTRY.values()}))


# ------------------------------------------------------------------------------------------- worked example
def example(c: Collected, folder: Path | None, truth_path: Path | None) -> None:
    """The ``causalcts analyze`` report of a shipped example rollout (its results.json) and the rollout's truth."""
    script = "paper/scripts/paper_numbers.py:example"
    res_path = folder / "results.json" if folder else None
    c.flags["example_run"] = bool(res_path and res_path.exists())
    if not c.flags["example_run"]:
        return
    r = _load(res_path)
    a = r["audit"]
    outcome = r["spec"]["outcomes"][0]
    o = r["outcomes"][outcome]
    rec = o["recommended"]
    vals = {
        "name": r["name"],
        "outcome": outcome,
        "teams": fint(a["teams"]),
        "weeks": fint(a["weeks"]),
        "rows": fint(a["rows"]),
        "treated": fint(a["cohorts"]["treated_teams"]),
        "never": fint(a["cohorts"]["never_treated_teams"]),
        "share_mean": fx(a["share"]["mean"], 2),
        "share_last": fx(a["share"]["mean_in_last_week"], 2),
        "threshold": fx(a["onset_threshold"], 1),
        "methods": fint(len(r["methods"])),
        "rec.method": rec["method"],
        "rec.estimate": fx(rec["estimate"], 3),
        "rec.lower": fx(rec["lower"], 3),
        "rec.upper": fx(rec["upper"], 3),
        "rec.level": fint(100 * rec["level"]),
        "rec.reason": rec["reason"],
        "rec.lr": fx(rec["long_run"]["estimate"], 3),
        "rec.lr_lower": fx(rec["long_run"]["lower"], 3),
        "rec.lr_upper": fx(rec["long_run"]["upper"], 3),
        "seconds": fx(r.get("elapsed_seconds", float("nan")), 0),
        "version": r.get("causalcts_version", "n/a"),
        "diag_failed": fint(sum(d["verdict"] == "fail" for d in o["diagnostics"])),
        "diag_total": fint(len(o["diagnostics"])),
    }
    s = r.get("savings", {})
    if s.get("available"):
        vals.update(
            {
                "sav.years": fx(s["engineering_years"]["estimate"], 1),
                "sav.years_lo": fx(s["engineering_years"]["lower"], 1),
                "sav.years_hi": fx(s["engineering_years"]["upper"], 1),
                "sav.used": fx(s["engineering_years_used"], 1),
                "sav.cts_pct": fx(100 * s["cts_change"]["estimate"], 1),
                "sav.cts_lo": fx(100 * s["cts_change"]["lower"], 1),
                "sav.cts_hi": fx(100 * s["cts_change"]["upper"], 1),
                "sav.cost_week": fint(r["spec"]["cost_per_developer_week"]),
            }
        )
    c.flags["example_savings"] = bool(s.get("available"))
    inputs = [res_path]
    if truth_path and truth_path.exists():
        t = _load(truth_path)["truth"]
        vals.update(
            {
                "truth.effect": fx(t["effect"][outcome], 3),
                "truth.lr": fx(t["long_run_effect"][outcome], 3),
                "truth.persistence": fx(t["persistence"][outcome], 2),
            }
        )
        c.flags["example_truth"] = True
        inputs.append(truth_path)
    else:
        c.flags["example_truth"] = False
    c.put("example", inputs, script, vals)
    rows = [
        [e["method"], e["term"], fx(e["estimate"], 3), f"[{fx(e['lower'], 3)}, {fx(e['upper'], 3)}]"]
        for e in o["estimates"]
    ]
    rows += [
        [m, "long run", fx(v["estimate"], 3), f"[{fx(v['lower'], 3)}, {fx(v['upper'], 3)}]"]
        for m, v in o["long_run"].items()
        if v.get("estimate") is not None
    ]
    c.table("example_estimates", ["method", "term", "estimate", "interval"], rows, [res_path], script)
    diag = [
        [d["name"], d["variable"], "" if d["pvalue"] in (None, "None") else fx(float(d["pvalue"]), 3), d["verdict"]]
        for d in o["diagnostics"]
    ]
    c.table("example_diagnostics", ["check", "variable", "p-value", "verdict"], diag, [res_path], script)


# ------------------------------------------------------------------------------------------- exogeneity grid
def _grid_comment_blocks(grid_toml: Path) -> dict[str, list[str]]:
    """The ``# * design: ...`` bullets of a grid TOML's comments, keyed by the first word of their heading.

    A bullet's continuation lines (``#   ...``) are joined to it.
    """
    blocks: dict[str, list[str]] = {}
    head = ""
    for line in grid_toml.read_text().splitlines():
        if not line.startswith("#"):
            continue
        text = line[1:].strip()
        if text.startswith("* "):
            blocks.setdefault(head, []).append(text[2:])
        elif line.startswith("#   ") and blocks.get(head):
            blocks[head][-1] += " " + text
        elif text[:1].isupper():  # a heading (a lower-case line continues the one before)
            head = text.split(" ")[0]
    return blocks


def _check_against_grid(grid_toml: Path, crit: dict) -> None:
    """Stop when ``criteria.toml`` and the grid file's comments (written before the run) disagree."""
    blocks = _grid_comment_blocks(grid_toml)
    rec_lines = blocks.get("What", [])
    crit_lines = blocks.get("Criteria", [])
    lo, hi = crit["coverage90_band"]
    band = f"[{lo:.2f}, {hi:.2f}]"
    bound = f"{crit['bias_abs_max']:g}"

    def lines_for(design: str, lines: list[str]) -> list[str]:
        return [t for t in lines if design in t.split(":", 1)[0]]

    problems = []
    for design, method in crit["recommended"].items():
        if not any(method in t for t in lines_for(design, rec_lines)):
            problems.append(f"{design}: recommended method {method!r} is not what the grid's comments say")
        if not any(bound in t and band in t for t in lines_for(design, crit_lines)):
            problems.append(f"{design}: criteria |bias| < {bound}, coverage in {band} are not the grid's")
    if problems:
        raise ValueError(f"paper/criteria.toml [exogeneity] disagrees with {grid_toml}: " + "; ".join(problems))


def _design_names(designs: list[dict], knobs: dict[str, str]) -> list[str]:
    """Each grid design's name (feedback, selection, ...): the trap knob it turns on."""
    names = []
    for d in designs:
        on = [name for name, knob in knobs.items() if float(d.get(knob, 0) or 0) != 0]
        names.append(on[0] if len(on) == 1 else design_label_safe(d))
    return names


def design_label_safe(d: dict) -> str:
    from causalcts.evaluation.montecarlo import design_label

    return design_label(d)


def _run_seconds(folder: Path, summary: pd.DataFrame) -> tuple[float, str]:
    """CPU seconds of the fits: the cells' ``seconds`` column summed, one per fit (each fit has a row per term).

    Without the cells (they are not committed), the same sum from the summary: mean seconds times fits.
    """
    cells = sorted((folder / "cells").glob("*.parquet")) if (folder / "cells").is_dir() else []
    if cells:
        df = pd.concat(
            [pd.read_parquet(f, columns=["design_id", "replication", "method", "seconds"]) for f in cells],
            ignore_index=True,
        )
        return float(df.drop_duplicates(["design_id", "replication", "method"])["seconds"].sum()), "cells"
    first = summary.drop_duplicates(["design_id", "method"])
    return float((first["seconds"] * (first["n"] + first["n_failed"])).sum()), "summary"


EXOG_COLUMNS = ["design", "method", "truth", "mean", "bias (MCSE)", "RMSE (MCSE)", "cover 90% (MCSE)"]
#: Names of the exogeneity grid's own method entries (``fit_auto`` itself; the fit without the mediator).
EXOG_METHOD_NAMES = {
    **METHOD_NAMES,
    "auto": "fit_auto (recommended path)",
    "bias-corrected-total": "bias-corrected FE without rollback_rate",
}


def exogeneity(c: Collected, folder: Path | None, grid_toml: Path, criteria_toml: Path) -> dict:
    """The exogeneity grid (feedback, selection, heterogeneity, mediator) against the criteria written before it.

    The grid's designs, seed and methods come from its TOML; its estimands, recommended methods and criteria
    from ``paper/criteria.toml`` (checked against the grid's comments); the results, if the grid has been run,
    from ``summary.parquet``; the mediator's total effect from the simulator's ``Truth``.
    """
    from causalcts.evaluation.montecarlo import load_grid
    from causalcts.simulate import simulate

    script = "paper/scripts/paper_numbers.py:exogeneity"
    crit = tomllib.loads(criteria_toml.read_text())["exogeneity"]
    _check_against_grid(grid_toml, crit)
    g = load_grid(grid_toml)
    names = _design_names(g.designs, crit["knobs"])
    d0 = g.designs[0]
    lo, hi = crit["coverage90_band"]
    vals = {
        "designs": fint(len(g.designs)),
        "design_list": ", ".join(names),
        "reps": fint(g.replications),
        "seed": str(g.seed),
        "teams": fint(d0["n_teams"]),
        "weeks": fint(d0["n_weeks"]),
        "persistence": fx(d0["persistence"], 1),
        "effect": fx(d0["effect"], 1),
        "methods": fint(len(g.methods)),
        "method_list": ", ".join(EXOG_METHOD_NAMES.get(m, m) for m in g.methods),
        "cells": fint(len(g.designs) * g.replications),
        "fits": fint(len(g.designs) * g.replications * len(g.methods)),
        "formula": g.formula,
        "bias_max": fx(crit["bias_abs_max"], 2),
        "cov90_lo": fx(lo, 2),
        "cov90_hi": fx(hi, 2),
        "term": crit["effect_term"],
        # MCSE of a 90 percent coverage at the nominal level with this many replications
        "cov90_mcse_nominal": fx(math.sqrt(0.9 * 0.1 / g.replications), 3),
    }
    for name, d in zip(names, g.designs, strict=True):
        knob = crit["knobs"].get(name)
        vals[f"{name}.knob"] = knob or ""
        vals[f"{name}.knob_value"] = f"{float(d.get(knob, 0)):g}" if knob else ""
        vals[f"{name}.rec"] = EXOG_METHOD_NAMES.get(crit["recommended"][name], crit["recommended"][name])
        vals[f"{name}.estimand"] = crit["estimand"][name]
        if name == "mediator":  # the total effect: the grid's fit without the control (crit["total_effect"])
            small = {**d, "n_teams": 4, "n_weeks": 4}
            truth = simulate(**small, seed=0).truth
            vals["mediator.total_effect"] = fx(truth.total_effect["cr_velocity"], 2)
            vals["mediator.direct_effect"] = fx(truth.effect["cr_velocity"], 2)
            vals["mediator.rollback_coef"] = fx(truth.covariate_effects["rollback_rate"], 2)
        if name in crit.get("exposure_weighted", {}):  # the ATE and the exposure-weighted effect (measured before)
            vals[f"{name}.ate"] = fx(float(d["effect"]), 2)
            vals[f"{name}.exposure_weighted"] = fx(crit["exposure_weighted"][name], 3)
    auto = crit.get("auto_method")
    vals["auto_in_grid"] = "yes" if auto in g.methods else "no"
    c.flags["exog_auto"] = auto in g.methods
    inputs: list[Path] = [grid_toml, criteria_toml]
    summ = folder / "summary.parquet" if folder else None
    run = bool(summ and summ.exists())
    c.flags["exog_run"] = run
    design_rows = [
        [name, f"{vals[f'{name}.knob']} = {vals[f'{name}.knob_value']}", crit["estimand"][name], vals[f"{name}.rec"]]
        for name in names
    ]
    if not run:
        c.put("exog", inputs, script, vals)
        c.table("exog_designs", ["design", "setting", "estimand", "recommended"], design_rows, inputs, script)
        return crit
    summary = exog_summary(summ, grid_toml, crit)
    inputs.append(summ)
    for _, r in summary.iterrows():
        k = f"{r['dname']}.{r['method']}.{r['term']}"
        vals[f"{k}.truth"] = fx(r["truth"], 2)
        vals[f"{k}.mean"] = fx(r["mean"], 3)
        for m in ("bias", "bias_mcse", "rmse", "rmse_mcse"):
            vals[f"{k}.{m}"] = fx(r[m], 4)
        for m in ("coverage90", "coverage90_mcse", "coverage95", "coverage95_mcse"):
            vals[f"{k}.{m}"] = fx(r[m], 3)
        vals[f"{k}.n"] = fint(r["n"])
        vals[f"{k}.n_failed"] = fint(r["n_failed"])
    # the recommended method of each design against the criteria (point estimates, as the grid states them)
    term = crit["effect_term"]
    check_rows, met = [], 0
    for name in names:
        rec = crit["recommended"][name]
        r = summary[(summary["dname"] == name) & (summary["method"] == rec) & (summary["term"] == term)]
        if r.empty:  # a design added to the grid but not run yet
            check_rows.append([name, EXOG_METHOD_NAMES.get(rec, rec), "", "not run", "", "", "", "not run"])
            continue
        r = r.iloc[0]
        bias_ok = bool(abs(r["bias"]) < crit["bias_abs_max"])
        cov_ok = bool(lo <= r["coverage90"] <= hi)
        c.flags[f"exog_{name}_bias_ok"] = bias_ok
        c.flags[f"exog_{name}_cov_ok"] = cov_ok
        c.flags[f"exog_{name}_meets"] = bias_ok and cov_ok
        met += bias_ok and cov_ok
        check_rows.append(
            [
                name,
                EXOG_METHOD_NAMES.get(rec, rec),
                fx(r["truth"], 2),
                f"{fx(r['bias'], 4)} ({fx(r['bias_mcse'], 4)})",
                "yes" if bias_ok else "no",
                f"{fx(r['coverage90'], 3)} ({fx(r['coverage90_mcse'], 3)})",
                "yes" if cov_ok else "no",
                "meets" if bias_ok and cov_ok else "fails",
            ]
        )
    vals["n_met"] = fint(met)
    c.flags["exog_all_met"] = met == len(names)
    _exog_additions(c, vals, summary, names, crit, [summ, grid_toml, criteria_toml], script)
    # the negative controls, expected to fail the same criteria
    neg = [(n, m) for n in names for m in crit["negative_controls"].get("all", [])]
    neg += [(n, m) for n, ms in crit["negative_controls"].items() if n != "all" for m in ms]
    failed = []
    for name, m in neg:
        r = summary[(summary["dname"] == name) & (summary["method"] == m) & (summary["term"] == term)]
        if len(r):
            r = r.iloc[0]
            failed.append(not (abs(r["bias"]) < crit["bias_abs_max"] and lo <= r["coverage90"] <= hi))
    vals["neg_total"] = fint(len(failed))
    vals["neg_failed"] = fint(sum(failed))
    passed_neg = [f"{EXOG_METHOD_NAMES.get(m, m)} under {n}" for (n, m), f in zip(neg, failed, strict=False) if not f]
    vals["neg_passed_list"] = ", ".join(passed_neg) or "none"
    c.flags["exog_neg_all_failed"] = all(failed)
    secs, how = _run_seconds(folder, summary)
    vals["cpu_hours"] = fx(secs / 3600, 1)
    vals["cpu_minutes"] = fint(secs / 60)
    vals["seconds_from"] = how
    vals["reps_min"] = fint(summary["n"].min())
    vals["failed_total"] = fint(summary.drop_duplicates(["design_id", "method"])["n_failed"].sum())
    c.put("exog", inputs, script, vals)
    c.table("exog_designs", ["design", "setting", "estimand", "recommended"], design_rows, inputs, script)
    c.table(
        "exog_check",
        [
            "design",
            "recommended method",
            "truth",
            "bias (MCSE)",
            f"|bias| < {vals['bias_max']}",
            "cover 90% (MCSE)",
            f"in [{vals['cov90_lo']}, {vals['cov90_hi']}]",
            "verdict",
        ],
        check_rows,
        inputs,
        script,
    )
    for t in ("ai_share", "L1.cr_velocity"):
        rows = []
        for _, r in summary[summary["term"] == t].iterrows():
            label = EXOG_METHOD_NAMES.get(r["method"], r["method"])
            if t == term and r["method"] == crit["recommended"].get(r["dname"]):
                label += " (recommended)"
            rows.append(
                [
                    r["dname"],
                    label,
                    fx(r["truth"], 2),
                    fx(r["mean"], 3),
                    f"{fx(r['bias'], 4)} ({fx(r['bias_mcse'], 4)})",
                    f"{fx(r['rmse'], 4)} ({fx(r['rmse_mcse'], 4)})",
                    f"{fx(r['coverage90'], 3)} ({fx(r['coverage90_mcse'], 3)})",
                ]
            )
        c.table(f"exog_{t.replace('.', '_')}", EXOG_COLUMNS, rows, [summ], script)
    return crit


def _exog_additions(
    c: Collected, vals: dict, summary: pd.DataFrame, names: list[str], crit: dict, inputs: list[Path], script: str
) -> None:
    """fit_auto itself in every design, the total effect, and the exposure-weighted effect, against their criteria.

    Table ``exog_auto``: one row per check (the grid's comments, "Criteria of the additions"): fit_auto in each
    design against the truth of the model it fitted (in a design with an exposure-weighted target, against that:
    |mean - target| only), the fit without the mediator against the total effect, and the methods named in
    ``exposure_weighted_methods`` against the exposure-weighted effect.
    """
    term = crit["effect_term"]
    lo, hi = crit["coverage90_band"]
    bound = crit["bias_abs_max"]
    auto = crit.get("auto_method")
    checks: list[tuple[str, str, str]] = []  # (design, method, what)
    for name in names:
        checks.append((name, auto, "exposure-weighted" if name in crit.get("exposure_weighted", {}) else "truth"))
    for name, m in crit.get("total_effect", {}).items():
        checks.append((name, m, "truth"))
    for name in crit.get("exposure_weighted", {}):
        checks += [(name, m, "exposure-weighted") for m in crit.get("exposure_weighted_methods", []) if m != auto]
    rows, met, done = [], 0, 0
    for name, m, what in checks:
        r = summary[(summary["dname"] == name) & (summary["method"] == m) & (summary["term"] == term)]
        label = EXOG_METHOD_NAMES.get(m, m)
        if r.empty:
            rows.append([name, label, "", "", "not run", "", "", "", "not run"])
            continue
        r = r.iloc[0]
        chosen = str(r.get("chosen", "") or "") if isinstance(r.get("chosen", ""), str) else ""
        if what == "exposure-weighted":
            target = float(crit["exposure_weighted"][name])
            dev = float(r["mean"]) - target
            ok_b, ok_c = abs(dev) < bound, True
            truth = f"{fx(target, 3)} (exposure-weighted)"
            bias = f"{fx(dev, 4)} ({fx(r['bias_mcse'], 4)})"
            cov = f"{fx(r['coverage90'], 3)} ({fx(r['coverage90_mcse'], 3)}) of the ATE"
        else:
            ok_b, ok_c = abs(float(r["bias"])) < bound, lo <= float(r["coverage90"]) <= hi
            truth = fx(r["truth"], 2) + (" (mean; varies)" if r.get("truth_varies", False) in (True,) else "")
            bias = f"{fx(r['bias'], 4)} ({fx(r['bias_mcse'], 4)})"
            cov = f"{fx(r['coverage90'], 3)} ({fx(r['coverage90_mcse'], 3)})"
        meets = bool(ok_b and ok_c)
        met += meets
        done += 1
        c.flags[f"exog_add_{name}_{m}_meets"] = meets
        k = f"{name}.{m}.{term}"
        if chosen:
            vals[f"{k}.chosen"] = chosen
        if what == "exposure-weighted":
            vals[f"{k}.minus_exposure_weighted"] = fx(dev, 4)
        rows.append(
            [name, label, chosen, truth, bias, "yes" if ok_b else "no", cov,
             "not judged" if what == "exposure-weighted" else "yes" if ok_c else "no", "meets" if meets else "fails"]
        )  # fmt: skip
    vals["additions_met"] = fint(met)
    vals["additions_run"] = fint(done)
    vals["additions_total"] = fint(len(checks))
    c.table(
        "exog_auto",
        ["design", "method", "path chosen", "truth", "bias (MCSE)", f"|bias| < {bound:g}", "cover 90% (MCSE)",
         f"in [{lo:.2f}, {hi:.2f}]", "verdict"],
        rows,
        inputs,
        script,
    )  # fmt: skip


def exog_summary(summ: Path, grid_toml: Path, crit: dict) -> pd.DataFrame:
    """The exogeneity summary with ``dname`` (feedback, selection, ...), in the grid's design and method order.

    A design of the grid that the summary does not hold yet (added, not run) is left out.
    """
    from causalcts.evaluation.montecarlo import load_grid

    g = load_grid(grid_toml)
    names = _design_names(g.designs, crit["knobs"])
    summary = pd.read_parquet(summ)
    ids = _design_ids(summary, g.designs, list(crit["knobs"].values()))
    by_id = {i: n for i, n in zip(ids, names, strict=True) if i is not None}
    summary = summary[summary["design_id"].isin(list(by_id))]
    summary = summary.assign(dname=summary["design_id"].map(by_id))
    d_order = {n: i for i, n in enumerate(names)}
    m_order = {m: i for i, m in enumerate(g.methods)}
    summary = summary.assign(_d=summary["dname"].map(d_order), _m=summary["method"].map(m_order))
    return summary.sort_values(["_d", "_m", "term"], kind="stable").drop(columns=["_d", "_m"])


def _design_ids(summary: pd.DataFrame, designs: list[dict], knobs: list[str]) -> list[str | None]:
    """The summary's design_id of each grid design, in the grid's order (matched on the design's knobs).

    None for a design the summary does not hold (a knob it sets is not a column, or no row matches).
    """
    ids: list[str | None] = []
    for d in designs:
        if any(k not in summary for k in d):
            ids.append(None)
            continue
        m = pd.Series(True, index=summary.index)
        for k, v in d.items():
            m &= summary[k].astype(float).fillna(0) == float(v)
        for k in summary.columns.intersection(knobs):
            if k not in d:
                m &= summary[k].astype(float).fillna(0) == 0
        found = summary.loc[m, "design_id"].unique()
        if len(found) > 1:
            raise ValueError(f"design {d} matches {len(found)} designs of the summary")
        ids.append(found[0] if len(found) else None)
    return ids


STEPS: dict[str, Callable] = {
    "exogeneity": exogeneity,
    "speed": speed,
    "sbc": sbc,
    "headline": headline,
    "grid_designs": grid_designs,
    "study": study,
    "projection": projection,
    "criteria": criteria_values,
    "methods_table": methods_table,
    "example": example,
}
