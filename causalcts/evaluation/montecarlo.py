r"""Monte Carlo recovery studies: does each method recover a known AI-adoption effect?

A *grid* (a TOML file written before the results are seen) lists designs — values of the
simulator's knobs, expanded as a Cartesian product — and methods — keyword arguments of
:func:`causalcts.fit`. Each (design, replication) *cell* simulates one panel and fits every method
to it. The cell's seed is derived from the grid seed, a stable hash of the design's parameters and
the replication number with :class:`numpy.random.SeedSequence`, so any cell reruns alone and gives
the same numbers on any engine (local processes or a Dask cluster).

Results are a tidy table (one row per design, replication, method and term) with the estimate,
standard error, 90 and 95 percent intervals, truth, convergence flag, seconds and error message;
failed fits are recorded, not dropped. :func:`summarize` computes, per design, method and term, the
performance measures of Morris, White and Crowther (2019, Statistics in Medicine 38) with their Monte
Carlo standard errors (MCSE):

============  =====================================  ==============================================
measure       estimate                               MCSE
============  =====================================  ==============================================
bias          mean(est - truth)                      sqrt(var(est) / n)
emp_se        sd(est)                                emp_se / sqrt(2 (n - 1))
model_se      sqrt(mean(se^2))                       sqrt(var(se^2) / (4 n model_se^2))
rmse          sqrt(mean((est - truth)^2))            MCSE(mse) / (2 rmse)
coverage      share of intervals holding the truth   sqrt(c (1 - c) / n)
rejection     share with \|est / se\| > z_0.975       sqrt(r (1 - r) / n) (size under a null, power otherwise)
============  =====================================  ==============================================
"""

from __future__ import annotations

import json
import multiprocessing
import time
import tomllib
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from causalcts.api import fit
from causalcts.errors import CausalCTSError
from causalcts.simulate import simulate

__all__ = ["Grid", "load_grid", "run_cell", "run_grid", "summarize", "summary_markdown"]

GRID_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "grids"
RESULT_COLUMNS = [
    "design_id",
    "replication",
    "method",
    "term",
    "estimate",
    "std_error",
    "lower90",
    "upper90",
    "lower95",
    "upper95",
    "truth",
    "converged",
    "seconds",
    "error",
]


@dataclass(frozen=True)
class Grid:
    """Designs (dicts of simulator knobs), methods (name -> fit keywords) and replications."""

    name: str
    formula: str
    outcome: str
    terms: tuple[str, ...]
    designs: tuple[dict, ...]
    methods: dict
    replications: int
    seed: int = 0
    info: dict = field(default_factory=dict)


def _expand(block: dict) -> list[dict]:
    keys = list(block)
    values = [v if isinstance(v, list) else [v] for v in block.values()]
    return [dict(zip(keys, combo)) for combo in product(*values)]


def load_grid(name_or_path: str | Path) -> Grid:
    """Read a grid from ``benchmarks/grids/<name>.toml`` or a path.

    Examples
    --------
    >>> from causalcts.evaluation.montecarlo import load_grid
    >>> g = load_grid("smoke")
    >>> g.name, g.replications > 0
    ('smoke', True)
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = GRID_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise CausalCTSError(f"No grid {str(name_or_path)!r}: expected {path}.")
    spec = tomllib.loads(path.read_text())
    g = spec.get("grid", {})
    for key in ("name", "formula", "outcome", "replications"):
        if key not in g:
            raise CausalCTSError(f"Grid {path} lacks [grid] {key}.")
    designs = []
    for block in spec.get("design", []):
        designs.extend(_expand(block))
    if not designs or not spec.get("methods"):
        raise CausalCTSError(f"Grid {path} needs at least one [[design]] and a [methods] table.")
    methods = {}
    for name, kw in spec["methods"].items():
        kw = dict(kw)
        if "gmm" in kw:
            kw["gmm"] = {k: (v[0], v[1] if len(v) > 1 and v[1] >= 0 else None) for k, v in kw["gmm"].items()}
        methods[name] = kw
    return Grid(
        name=g["name"],
        formula=g["formula"],
        outcome=g["outcome"],
        terms=tuple(g.get("terms", [])),
        designs=tuple(designs),
        methods=methods,
        replications=int(g["replications"]),
        seed=int(g.get("seed", 0)),
        info={k: v for k, v in g.items() if k not in ("name", "formula", "outcome", "terms", "replications", "seed")},
    )


def design_id(design: dict) -> str:
    """Stable short identifier of a design (hash of its sorted parameters)."""
    text = json.dumps(design, sort_keys=True, default=str)
    return f"d{zlib.crc32(text.encode()):08x}"


def cell_seed(grid_seed: int, design: dict, replication: int) -> np.random.SeedSequence:
    """SeedSequence of one cell, from the grid seed, the design's hash and the replication number."""
    return np.random.SeedSequence(
        [int(grid_seed), zlib.crc32(json.dumps(design, sort_keys=True, default=str).encode()), int(replication)]
    )


def truth_of(term: str, outcome: str, truth) -> float:
    """True value of a term of the dynamic model: the outcome's lag, the adoption share, or a covariate."""
    if term == f"L1.{outcome}":
        return float(truth.persistence[outcome])
    if term == "ai_share":
        return float(truth.effect[outcome])
    if term in truth.covariate_effects:
        return float(truth.covariate_effects[term])
    return float("nan")


def run_cell(grid: Grid, design: dict, replication: int) -> pd.DataFrame:
    """Simulate one panel and fit every method; one row per method and term (failures recorded)."""
    ss = cell_seed(grid.seed, design, replication)
    sim_seed, fit_seed = (int(s.generate_state(1)[0]) for s in ss.spawn(2))
    sim = simulate(**design, seed=sim_seed)
    rows = []
    for name, kw in grid.methods.items():
        kw = dict(kw)
        if kw.get("method") == "bayes":
            kw.setdefault("seed", fit_seed)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = fit(grid.formula, sim.data, **kw)
            secs = time.perf_counter() - t0
            ci90, ci95 = res.conf_int(0.90), res.conf_int(0.95)
            conv = bool(getattr(res, "converged", True))
            for term in grid.terms or list(res.params.index):
                rows.append(
                    {
                        "method": name,
                        "term": term,
                        "estimate": float(res.params[term]),
                        "std_error": float(res.std_errors[term]),
                        "lower90": float(ci90.loc[term, "lower"]),
                        "upper90": float(ci90.loc[term, "upper"]),
                        "lower95": float(ci95.loc[term, "lower"]),
                        "upper95": float(ci95.loc[term, "upper"]),
                        "converged": conv,
                        "seconds": secs,
                        "error": "",
                    }
                )
        except Exception as err:  # a failed fit is a result, not a crash
            for term in grid.terms:
                rows.append(
                    {
                        "method": name,
                        "term": term,
                        "estimate": np.nan,
                        "std_error": np.nan,
                        "lower90": np.nan,
                        "upper90": np.nan,
                        "lower95": np.nan,
                        "upper95": np.nan,
                        "converged": False,
                        "seconds": time.perf_counter() - t0,
                        "error": f"{type(err).__name__}: {err}",
                    }
                )
    out = pd.DataFrame(rows)
    out.insert(0, "replication", replication)
    out.insert(0, "design_id", design_id(design))
    out["truth"] = [truth_of(t, grid.outcome, sim.truth) for t in out["term"]]
    for k, v in design.items():
        out[k] = v if not isinstance(v, (dict, list, tuple)) else json.dumps(v)
    return out


def _cell_path(out_dir: Path, did: str, rep: int) -> Path:
    return out_dir / "cells" / f"{did}_r{rep:05d}.parquet"


def _run_and_save(grid: Grid, design: dict, rep: int, out_dir: str) -> str:
    df = run_cell(grid, design, rep)
    path = _cell_path(Path(out_dir), design_id(design), rep)
    df.to_parquet(path, index=False)
    return str(path)


def run_grid(
    grid: Grid | str,
    out_dir: str | Path,
    *,
    engine: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run every cell not already in ``out_dir`` and return the combined results table.

    Parameters
    ----------
    engine
        ``"local"`` (processes on this machine) or ``"dask"`` (a ``LocalCluster`` or the scheduler at
        ``scheduler``).
    workers
        Local processes (default: CPU count) or LocalCluster workers.
    """
    if engine not in ("local", "dask"):
        raise CausalCTSError(f"engine={engine!r} is not supported; choose 'local' or 'dask'.")
    grid = load_grid(grid) if isinstance(grid, (str, Path)) else grid
    out = Path(out_dir)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    (out / "grid.json").write_text(
        json.dumps(
            {
                "name": grid.name,
                "formula": grid.formula,
                "outcome": grid.outcome,
                "terms": grid.terms,
                "designs": grid.designs,
                "methods": grid.methods,
                "replications": grid.replications,
                "seed": grid.seed,
            },
            indent=2,
            default=str,
        )
    )
    todo = [
        (d, r) for d in grid.designs for r in range(grid.replications) if not _cell_path(out, design_id(d), r).exists()
    ]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"{grid.name}: cells", unit="cell")
    if todo and engine == "local":
        n = workers or min(len(todo), __import__("os").cpu_count() or 1)
        if n == 1:
            for d, r in todo:
                _run_and_save(grid, d, r, str(out))
                bar and bar.update()
        else:
            # spawn, not fork: forking a process that holds threads (JAX, BLAS, numba) can deadlock
            with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(_run_and_save, grid, d, r, str(out)) for d, r in todo]
                for f in as_completed(futures):
                    f.result()
                    bar and bar.update()
    elif todo:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed

        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        try:
            futures = [client.submit(_run_and_save, grid, d, r, str(out), pure=False) for d, r in todo]
            for f in dask_completed(futures):
                f.result()
                bar and bar.update()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    if bar:
        bar.close()
    return load_results(out)


def load_results(out_dir: str | Path) -> pd.DataFrame:
    """Combine every cell file in ``out_dir`` into one table (sorted, so engines can be compared)."""
    files = sorted((Path(out_dir) / "cells").glob("*.parquet"))
    if not files:
        raise CausalCTSError(f"No results in {out_dir}.")
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return df.sort_values(["design_id", "replication", "method", "term"], kind="stable").reset_index(drop=True)


def summarize(results: pd.DataFrame, *, design_cols: list[str] | None = None) -> pd.DataFrame:
    """Performance measures with Monte Carlo standard errors per design, method and term (module docstring)."""
    design_cols = design_cols or [c for c in results.columns if c not in RESULT_COLUMNS]
    z = stats.norm.ppf(0.975)
    rows = []
    for key, g in results.groupby(["design_id", "method", "term"], sort=True):
        ok = g[np.isfinite(g["estimate"]) & np.isfinite(g["std_error"])]
        n = len(ok)
        truth = float(g["truth"].iloc[0])
        base = {
            "design_id": key[0],
            "method": key[1],
            "term": key[2],
            "truth": truth,
            "n": n,
            "n_failed": int(len(g) - n),
            "converged_share": float(g["converged"].mean()),
        }
        base.update({c: g[c].iloc[0] for c in design_cols})
        if n < 2:
            rows.append(base)
            continue
        est, se = ok["estimate"].to_numpy(), ok["std_error"].to_numpy()
        err = est - truth
        bias = err.mean()
        emp = est.std(ddof=1)
        mod = np.sqrt(np.mean(se**2))
        sq = err**2
        mse = sq.mean()
        rmse = np.sqrt(mse)
        mse_mcse = np.sqrt(((sq - mse) ** 2).sum() / (n * (n - 1)))
        cov90 = ((ok["lower90"] <= truth) & (truth <= ok["upper90"])).mean()
        cov95 = ((ok["lower95"] <= truth) & (truth <= ok["upper95"])).mean()
        rej = (np.abs(est / se) > z).mean()
        base.update(
            {
                "bias": bias,
                "bias_mcse": emp / np.sqrt(n),
                "emp_se": emp,
                "emp_se_mcse": emp / np.sqrt(2 * (n - 1)),
                "model_se": mod,
                "model_se_mcse": np.sqrt(np.var(se**2, ddof=1) / (4 * n * mod**2)),
                "rmse": rmse,
                "rmse_mcse": mse_mcse / (2 * rmse) if rmse > 0 else np.nan,
                "coverage90": cov90,
                "coverage90_mcse": np.sqrt(cov90 * (1 - cov90) / n),
                "coverage95": cov95,
                "coverage95_mcse": np.sqrt(cov95 * (1 - cov95) / n),
                "width95": float((ok["upper95"] - ok["lower95"]).mean()),
                "rejection": rej,
                "rejection_mcse": np.sqrt(rej * (1 - rej) / n),
                "seconds": float(g["seconds"].mean()),
            }
        )
        rows.append(base)
    return pd.DataFrame(rows)


def summary_markdown(summary: pd.DataFrame, *, columns: list[str] | None = None) -> str:
    """A markdown table of the summary, each measure shown as ``value (MCSE)``."""
    measures = ["bias", "emp_se", "model_se", "rmse", "coverage90", "coverage95", "rejection"]
    keys = columns or [c for c in ("n_teams", "n_weeks", "persistence", "effect") if c in summary.columns]
    head = ["design", *keys, "method", "term", "n", *measures]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in summary.iterrows():
        cells = [r["design_id"], *[str(r[k]) for k in keys], r["method"], r["term"], str(int(r["n"]))]
        for m in measures:
            v, e = r.get(m, np.nan), r.get(f"{m}_mcse", np.nan)
            cells.append("" if pd.isna(v) else f"{v:.4f} ({e:.4f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
