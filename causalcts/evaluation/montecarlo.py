r"""Monte Carlo recovery studies: does each method recover a known AI-adoption effect?

A *grid* (a TOML file written before the results are seen) lists designs — values of the
simulator's knobs, expanded as a Cartesian product — and methods — keyword arguments of
:func:`causalcts.fit`. Each (design, replication) *cell* simulates one panel and fits every method
to it. The cell's seed is derived from the grid seed, a stable hash of the design's parameters and
the replication number with :class:`numpy.random.SeedSequence`, so any cell reruns alone and gives
the same numbers on any engine (local processes or a Dask cluster).

Grids ship with the package (``causalcts/evaluation/grids/<name>.toml``: ``smoke``, ``paper``,
``headline``) and are read with :mod:`importlib.resources`, so they load from a wheel as from a
checkout; their method names are checked against the methods :func:`causalcts.fit` knows.

A method entry holds keyword arguments of :func:`causalcts.fit`, and may also carry

* ``formula = "..."``: its own model instead of the grid's (e.g. without a mediator control, to estimate
  the total effect beside the direct one);
* ``method = "auto"`` (with ``treatment = "..."`` and any other keyword of
  :func:`causalcts.diagnostics.fit_auto`): the recommended path itself, checks and all. The estimate is the
  recommendation's main estimate and the ``chosen`` column records the path it took (``"bias-corrected"``,
  ``"ml"``, ... followed by ``" -rollback_rate"`` for each control it dropped), so the summary can say how
  often each path was taken.

The truth of the treatment's coefficient follows the model that was fitted: the direct effect
(``Truth.effect``) when the mediator the simulator moves (``rollback_rate``, knob ``mediation``) is among
the regressors, else the total effect (``Truth.total_effect``, equal to the direct one when
``mediation = 0``).

A cell's file holds every method fitted to its panel; when methods are added to a grid, a rerun fits only
the methods a cell's file lacks (same panel, same seeds) and adds their rows, so finished fits are kept.

Results are a tidy table (one row per design, replication, method and term) with the estimate,
standard error, 90 and 95 percent intervals, truth, convergence flag, seconds, error message and the
package's own warnings raised by the fit (``DataWarning``, ``InstrumentWarning``,
``ConvergenceWarning``: one ``Category: message`` per line); failed fits are recorded, not dropped,
and warnings are recorded, not swallowed. :func:`summarize` computes, per design, method and term, the
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

Each summary row also carries ``mean`` (the mean estimate, beside ``truth``), a readable ``design``
label (``"T=26, beta=0.5, feedback=1"``: the parameters that vary between designs) and the share of
replications whose fit raised each warning category.
"""

from __future__ import annotations

import inspect
import json
import multiprocessing
import os
import time
import tomllib
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from causalcts import registry
from causalcts.api import fit
from causalcts.data.formula import formula_spec
from causalcts.diagnostics import fit_auto
from causalcts.errors import CausalCTSError, ConvergenceWarning, DataWarning, InstrumentWarning, SpecificationError
from causalcts.simulate import simulate

__all__ = [
    "Grid",
    "design_label",
    "grid_names",
    "load_grid",
    "run_cell",
    "run_grid",
    "summarize",
    "summary_markdown",
    "summary_table",
]

#: The package's own warning categories, recorded per fit in the ``warnings`` column.
RECORDED_WARNINGS = (DataWarning, InstrumentWarning, ConvergenceWarning)
#: Short names of the simulator's knobs in design labels (others keep their own name).
SHORT_NAMES = {"n_teams": "N", "n_weeks": "T", "persistence": "beta"}
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
    "warnings",
    "chosen",
]
#: Method name of a grid entry that runs :func:`causalcts.diagnostics.fit_auto` (the recommended path).
AUTO = "auto"
#: The control the simulator's ``mediation`` knob moves: with it in the model the treatment's truth is the
#: direct effect, without it the total effect.
MEDIATOR = "rollback_rate"


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


def _grid_files():
    return resources.files("causalcts.evaluation").joinpath("grids")


def grid_names() -> list[str]:
    """Names of the grids shipped with the package (``causalcts/evaluation/grids/*.toml``).

    Examples
    --------
    >>> from causalcts.evaluation.montecarlo import grid_names
    >>> grid_names()
    ['exogeneity', 'headline', 'paper', 'smoke']
    """
    return sorted(f.name[: -len(".toml")] for f in _grid_files().iterdir() if f.name.endswith(".toml"))


def known_methods() -> tuple[str, ...]:
    """Method names :func:`causalcts.fit` accepts (read from :mod:`causalcts.registry`)."""
    return registry.names()


def _check_auto(name: str, kw: dict, where: str) -> None:
    """A ``method = "auto"`` entry names its treatment and only keywords :func:`fit_auto` takes."""
    allowed = set(inspect.signature(fit_auto).parameters) - {"formula", "data"}
    unknown = sorted(set(kw) - allowed - {"method", "formula"})
    if unknown:
        raise SpecificationError(
            f"Grid {where}: [methods] {name} (method = 'auto', causalcts.diagnostics.fit_auto) does not take "
            f"{unknown}; it takes {sorted(allowed | {'formula'})}."
        )
    if not isinstance(kw.get("treatment"), str):
        raise SpecificationError(
            f'Grid {where}: [methods] {name} (method = "auto") needs treatment = "<column>", the regressor whose '
            "exogeneity fit_auto checks."
        )


def _check_methods(methods: dict, where: str) -> None:
    """Each grid method names a registered method (or ``auto``) and only options that method takes."""
    for name, kw in methods.items():
        if not isinstance(kw, dict) or "method" not in kw:
            raise SpecificationError(f'Grid {where}: [methods] {name} needs a method, e.g. {{ method = "within" }}.')
        if "formula" in kw:
            try:
                formula_spec(kw["formula"]) if isinstance(kw["formula"], str) else None
            except CausalCTSError as err:
                raise SpecificationError(f"Grid {where}: [methods] {name}: formula: {err}") from None
            if not isinstance(kw["formula"], str):
                raise SpecificationError(f"Grid {where}: [methods] {name}: formula must be a string.")
        if kw["method"] == AUTO:
            _check_auto(name, kw, where)
            continue
        if kw["method"] not in known_methods():
            raise SpecificationError(
                f"Grid {where}: [methods] {name} has method = {kw['method']!r}, which causalcts.fit does not know; "
                f"choose one of {', '.join(known_methods())}."
            )
        options = {k: v for k, v in kw.items() if k not in ("method", "formula") and k not in registry.COMMON_KEYWORDS}
        try:
            registry.check_options(kw["method"], options)
        except CausalCTSError as err:
            raise SpecificationError(f"Grid {where}: [methods] {name}: {err}") from None


def _check_designs(designs: list[dict], where: str) -> None:
    knobs = set(inspect.signature(simulate).parameters) - {"seed"}
    for i, d in enumerate(designs):
        unknown = sorted(set(d) - knobs)
        if unknown:
            raise SpecificationError(
                f"Grid {where}: design {i + 1} sets {unknown}, which simulate() does not take; "
                f"its parameters are {sorted(knobs)}."
            )


def load_grid(name_or_path: str | Path) -> Grid:
    """Read a grid shipped with the package (by name, see :func:`grid_names`) or a TOML file (by path).

    Method names are checked against the methods :func:`causalcts.fit` knows and design keys
    against the parameters of :func:`causalcts.simulate`, so a typo fails here, not in every cell.

    Examples
    --------
    >>> from causalcts.evaluation.montecarlo import load_grid
    >>> g = load_grid("smoke")
    >>> g.name, g.replications > 0
    ('smoke', True)
    """
    path = Path(name_or_path)
    if path.suffix:
        if not path.exists():
            raise CausalCTSError(f"No grid file {str(name_or_path)!r}.")
        text, where = path.read_text(), str(path)
    else:
        res = _grid_files().joinpath(f"{name_or_path}.toml")
        if not res.is_file():
            raise CausalCTSError(
                f"No grid {str(name_or_path)!r}: the package ships {', '.join(grid_names())}; "
                "or pass the path of a .toml file."
            )
        text, where = res.read_text(), f"{name_or_path!r}"
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecificationError(f"Grid {where} is not valid TOML: {err}.") from None
    g = spec.get("grid", {})
    for key in ("name", "formula", "outcome", "replications"):
        if key not in g:
            raise CausalCTSError(f"Grid {where} lacks [grid] {key}.")
    designs = []
    for block in spec.get("design", []):
        designs.extend(_expand(block))
    if not designs or not spec.get("methods"):
        raise CausalCTSError(f"Grid {where} needs at least one [[design]] and a [methods] table.")
    _check_designs(designs, where)
    _check_methods(spec["methods"], where)
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


def truth_of(term: str, outcome: str, truth, formula: str | None = None) -> float:
    """True value of a term of the dynamic model: the outcome's lag, the adoption share, or a covariate.

    The adoption share's truth is the direct effect when ``formula`` (the model fitted; None: assume it
    does) holds the mediator ``rollback_rate``, and the total effect when it does not.
    """
    if term == f"L1.{outcome}":
        return float(truth.persistence[outcome])
    if term == "ai_share":
        if formula is not None and MEDIATOR not in {t.variable for t in formula_spec(formula).terms}:
            return float(truth.total_effect[outcome])
        return float(truth.effect[outcome])
    if term in truth.covariate_effects:
        return float(truth.covariate_effects[term])
    return float("nan")


def _recorded(caught) -> list[str]:
    """The package's own warnings among ``caught``, as ``Category: message`` lines, first occurrence kept."""
    lines = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, RECORDED_WARNINGS)]
    return list(dict.fromkeys(lines))


FAILED = {
    "estimate": np.nan,
    "std_error": np.nan,
    "lower90": np.nan,
    "upper90": np.nan,
    "lower95": np.nan,
    "upper95": np.nan,
    "converged": False,
}


def _estimates(res, terms: tuple[str, ...]) -> list[dict]:
    ci90, ci95 = res.conf_int(0.90), res.conf_int(0.95)
    conv = bool(getattr(res, "converged", True))
    return [
        {
            "term": term,
            "estimate": float(res.params[term]),
            "std_error": float(res.std_errors[term]),
            "lower90": float(ci90.loc[term, "lower"]),
            "upper90": float(ci90.loc[term, "upper"]),
            "lower95": float(ci95.loc[term, "lower"]),
            "upper95": float(ci95.loc[term, "upper"]),
            "converged": conv,
        }
        for term in terms or list(res.params.index)
    ]


def _chosen(res) -> str:
    """The path :func:`fit_auto` took: its method, then ``-<control>`` for each control it dropped."""
    dropped = res.info.get("auto", {}).get("dropped", [])
    return " ".join([res.method, *(f"-{c}" for c in dropped)])


def _fit_method(kw: dict, formula: str, data: pd.DataFrame):
    """Fit one grid method entry (``auto``: :func:`fit_auto`); the results and the path chosen."""
    if kw.get("method") == AUTO:
        res = fit_auto(formula, data, **{k: v for k, v in kw.items() if k != "method"})
        return res, _chosen(res)
    if "checks" in inspect.signature(fit).parameters:  # the grid runs its own checks (method "auto")
        kw = {"checks": False, **kw}
    return fit(formula, data, **kw), ""


def run_cell(grid: Grid, design: dict, replication: int, methods: list[str] | None = None) -> pd.DataFrame:
    """Simulate one panel and fit every method (or those named in ``methods``); one row per method and term.

    Failed fits are recorded (``error``), and so are the package's own warnings raised while
    simulating and fitting (``warnings``: one ``Category: message`` per line, empty if none). Other
    libraries' warnings are not recorded. Warnings are caught with :func:`warnings.catch_warnings`,
    which is process-wide: run cells one per process or thread (the local engine and the Dask
    ``LocalCluster`` of :func:`run_grid` do).
    """
    ss = cell_seed(grid.seed, design, replication)
    sim_seed, fit_seed = (int(s.generate_state(1)[0]) for s in ss.spawn(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = simulate(**design, seed=sim_seed)
    sim_warnings = [f"simulate: {w}" for w in _recorded(caught)]
    rows: list[dict[str, Any]] = []
    for name, kw in grid.methods.items():
        if methods is not None and name not in methods:
            continue
        kw = dict(kw)
        formula = kw.pop("formula", grid.formula)
        if kw.get("method") == "bayes":
            kw.setdefault("seed", fit_seed)
        t0 = time.perf_counter()
        chosen, fitted_formula = "", formula
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res, chosen = _fit_method(kw, formula, sim.data)
                fitted, error, fitted_formula = _estimates(res, grid.terms), "", res.formula
            except Exception as err:  # a failed fit is a result, not a crash
                fitted = [{"term": term, **FAILED} for term in grid.terms]
                error = f"{type(err).__name__}: {err}"
        extra = {
            "method": name,
            "seconds": time.perf_counter() - t0,
            "error": error,
            "warnings": "\n".join(sim_warnings + _recorded(caught)),
            "chosen": chosen,
        }
        rows.extend(
            {**extra, **r, "truth": truth_of(r["term"], grid.outcome, sim.truth, fitted_formula)} for r in fitted
        )
    out = pd.DataFrame(rows, columns=[c for c in RESULT_COLUMNS if c not in ("design_id", "replication")])
    out.insert(0, "replication", replication)
    out.insert(0, "design_id", design_id(design))
    for k, v in design.items():
        out[k] = v if not isinstance(v, (dict, list, tuple)) else json.dumps(v)
    return out[RESULT_COLUMNS + [k for k in design if k not in RESULT_COLUMNS]]


def _cell_path(out_dir: Path, did: str, rep: int) -> Path:
    return out_dir / "cells" / f"{did}_r{rep:05d}.parquet"


def _missing_methods(path: Path, grid: Grid) -> list[str]:
    """Methods of ``grid`` that the cell file at ``path`` lacks (every method when there is no file)."""
    if not path.exists():
        return list(grid.methods)
    done = set(pd.read_parquet(path, columns=["method"])["method"])
    return [m for m in grid.methods if m not in done]


def _run_and_save(grid: Grid, design: dict, rep: int, out_dir: str, methods: list[str] | None = None) -> str:
    """Fit ``methods`` (default: all) in one cell; add their rows to the cell's file, keeping the rows there."""
    df = run_cell(grid, design, rep, methods)
    path = _cell_path(Path(out_dir), design_id(design), rep)
    if path.exists():
        df = pd.concat([pd.read_parquet(path), df], ignore_index=True)
    tmp = path.with_suffix(".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)  # atomic: an interrupted run never leaves half a cell
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

    Each invocation that has cells to run is appended to ``out_dir/runs.json`` (start, wall seconds, cells planned
    and done, engine, workers), also when it is interrupted, so a resumed grid's wall time is the sum of its runs.

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
    # replication by replication across the designs, so a run stopped early has every design at the same depth
    todo = [
        (d, r, missing)
        for r in range(grid.replications)
        for d in grid.designs
        if (missing := _missing_methods(_cell_path(out, design_id(d), r), grid))
    ]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"{grid.name}: cells", unit="cell")
    n_workers = (workers or min(len(todo), os.cpu_count() or 1)) if engine == "local" else (workers or 2)
    started, t0, done = datetime.now(UTC), time.perf_counter(), [0]
    try:
        _run_todo(grid, todo, out, engine, n_workers, scheduler, bar, done)
    finally:
        if bar:
            bar.close()
        if todo:
            _log_run(out, started, time.perf_counter() - t0, len(todo), done[0], engine, n_workers, scheduler)
    return load_results(out)


def _log_run(
    out: Path, started: datetime, wall: float, planned: int, done: int, engine: str, workers: int, scheduler
) -> None:
    """Append this invocation to ``out/runs.json``: when, how long, how many cells, on what (a resumed grid's
    wall time is the sum over its runs)."""
    import platform

    from causalcts import __version__

    path = out / "runs.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append(
        {
            "started": started.isoformat(timespec="seconds"),
            "wall_seconds": round(wall, 1),
            "cells_planned": planned,
            "cells_done": done,
            "completed": done == planned,
            "engine": engine,
            "workers": workers,
            "scheduler": scheduler or "local",
            "cpu_count": os.cpu_count(),
            "machine": f"{platform.system()} {platform.machine()}",
            "causalcts": __version__,
        }
    )
    path.write_text(json.dumps(runs, indent=2) + "\n")


def _run_todo(grid: Grid, todo: list, out: Path, engine: str, n: int, scheduler, bar, done: list[int]) -> None:
    """Run the cells in ``todo`` on ``engine``; ``done[0]`` counts the cells written."""
    if todo and engine == "local":
        if n == 1:
            for d, r, m in todo:
                _run_and_save(grid, d, r, str(out), m)
                done[0] += 1
                bar and bar.update()
        else:
            # spawn, not fork: forking a process that holds threads (JAX, BLAS, numba) can deadlock
            with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(_run_and_save, grid, d, r, str(out), m) for d, r, m in todo]
                for f in as_completed(futures):
                    f.result()
                    done[0] += 1
                    bar and bar.update()
    elif todo:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed

        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        try:
            dask_futures = [client.submit(_run_and_save, grid, d, r, str(out), m, pure=False) for d, r, m in todo]
            for f in dask_completed(dask_futures):
                f.result()
                done[0] += 1
                bar and bar.update()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def load_results(out_dir: str | Path) -> pd.DataFrame:
    """Combine every cell file in ``out_dir`` into one table (sorted, so engines can be compared)."""
    files = sorted((Path(out_dir) / "cells").glob("*.parquet"))
    if not files:
        raise CausalCTSError(f"No results in {out_dir}.")
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return df.sort_values(["design_id", "replication", "method", "term"], kind="stable").reset_index(drop=True)


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


def design_label(design: dict, keys: list[str] | None = None) -> str:
    """A design as readable parameters, e.g. ``"T=26, beta=0.5, feedback=1"``.

    Parameters
    ----------
    design
        Simulator knobs (a grid design, or a row of a results or summary table).
    keys
        Knobs to show (default: every knob of ``design``); ``n_teams``, ``n_weeks`` and ``persistence``
        are shown as ``N``, ``T`` and ``beta``.

    Examples
    --------
    >>> from causalcts.evaluation.montecarlo import design_label
    >>> design_label({"n_teams": 500, "n_weeks": 26, "persistence": 0.5, "feedback": 1.0})
    'N=500, T=26, beta=0.5, feedback=1'
    """
    keys = list(design) if keys is None else keys
    shown = [k for k in keys if not (isinstance(design[k], float) and np.isnan(design[k]))]  # NaN: knob not set
    return ", ".join(f"{SHORT_NAMES.get(k, k)}={_fmt(design[k])}" for k in shown) or "defaults"


def _design_labels(results: pd.DataFrame, design_cols: list[str]) -> tuple[dict, list[str]]:
    """Labels per design_id from the knobs that differ between designs; and the knobs they share."""
    designs = results.drop_duplicates("design_id").set_index("design_id")[design_cols]
    varying = [c for c in design_cols if designs[c].astype(str).nunique(dropna=False) > 1]
    shared = [c for c in design_cols if c not in varying]
    keys = varying or design_cols
    labels = {did: design_label(row.to_dict(), keys) for did, row in designs.iterrows()}
    return labels, shared


def _chosen_shares(g: pd.DataFrame) -> str:
    """How often each path was chosen among a group's fits, most frequent first ("" when none recorded)."""
    if "chosen" not in g:
        return ""
    chosen = g["chosen"].fillna("")
    chosen = chosen[chosen != ""]
    if chosen.empty:
        return ""
    shares = chosen.value_counts(normalize=True, sort=False).sort_index().sort_values(ascending=False, kind="stable")
    return ", ".join(
        f"{path} {share:.0%}" if share >= 0.01 else f"{path} {share:.1%}" for path, share in shares.items()
    )


def summarize(results: pd.DataFrame, *, design_cols: list[str] | None = None) -> pd.DataFrame:
    """Performance measures with Monte Carlo standard errors per design, method and term (module docstring).

    Besides the measures, each row has ``design`` (a readable label of the knobs that differ between
    designs), ``mean`` (the mean estimate, beside ``truth``), and ``warned_share`` and
    ``<category>_share`` (share of replications whose fit raised any of the package's warnings, and
    each category of them), and ``chosen`` (for ``method = "auto"``: how often each path was taken, e.g.
    ``"bias-corrected 97%, ml 3%"``; empty for other methods).

    Each replication's estimate is compared with its own truth (``auto`` may fit the model with or without
    the mediator, whose truths differ); ``truth`` shows it when it is the same in every replication and
    its mean otherwise (``truth_varies``).
    """
    design_cols = design_cols or [c for c in results.columns if c not in RESULT_COLUMNS]
    labels, shared = _design_labels(results, design_cols) if design_cols else ({}, [])
    notes = results["warnings"].fillna("") if "warnings" in results else pd.Series("", index=results.index)
    z = stats.norm.ppf(0.975)
    rows = []
    for key, g in results.groupby(["design_id", "method", "term"], sort=True):
        ok = g[np.isfinite(g["estimate"]) & np.isfinite(g["std_error"])]
        n = len(ok)
        truths = (ok if n else g)["truth"]
        truth = float(truths.iloc[0]) if truths.nunique() <= 1 else float(truths.mean())
        note = notes.loc[g.index]
        base = {
            "design_id": key[0],
            "design": labels.get(key[0], key[0]),
            "method": key[1],
            "term": key[2],
            "truth": truth,
            "n": n,
            "n_failed": int(len(g) - n),
            "converged_share": float(g["converged"].mean()),
            "warned_share": float((note != "").mean()),
            "truth_varies": bool(truths.nunique() > 1),
            "chosen": _chosen_shares(g),
        }
        for cat in RECORDED_WARNINGS:
            base[f"{cat.__name__}_share"] = float(note.str.contains(f"{cat.__name__}:", regex=False).mean())
        base.update({c: g[c].iloc[0] for c in design_cols})
        if n < 2:
            rows.append(base)
            continue
        est, se = ok["estimate"].to_numpy(), ok["std_error"].to_numpy()
        truth_rows = ok["truth"].to_numpy()
        err = est - truth_rows
        bias = err.mean()
        emp = est.std(ddof=1)
        mod = np.sqrt(np.mean(se**2))
        sq = err**2
        mse = sq.mean()
        rmse = np.sqrt(mse)
        mse_mcse = np.sqrt(((sq - mse) ** 2).sum() / (n * (n - 1)))
        cov90 = ((ok["lower90"] <= truth_rows) & (truth_rows <= ok["upper90"])).mean()
        cov95 = ((ok["lower95"] <= truth_rows) & (truth_rows <= ok["upper95"])).mean()
        rej = (np.abs(est / se) > z).mean()
        base.update(
            {
                "mean": est.mean(),
                "mean_mcse": emp / np.sqrt(n),
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
    out = pd.DataFrame(rows)
    try:  # designs in the order of their parameters (T=6 before T=10), not of their hashes
        out = out.sort_values([*design_cols, "method", "term"], kind="stable", ignore_index=True)
    except TypeError:  # a knob holding numbers in some designs and text in others keeps the hash order
        pass
    for col in MEASURES:  # present even when no cell has two successful fits
        if col not in out.columns:
            out[col] = np.nan
    out.attrs["shared"] = design_label({c: results[c].iloc[0] for c in shared}) if shared else ""
    return out


#: Columns of :func:`summarize` computed from two or more successful fits (NaN otherwise).
MEASURES = [
    f"{m}{suffix}"
    for m in ("mean", "bias", "emp_se", "model_se", "rmse", "coverage90", "coverage95", "rejection")
    for suffix in ("", "_mcse")
] + ["width95", "seconds"]

#: Measures of :func:`summary_table`, each shown as ``value (MCSE)``.
TABLE_MEASURES = {
    "mean": "mean estimate",
    "bias": "bias",
    "rmse": "RMSE",
    "coverage90": "coverage 90%",
    "coverage95": "coverage 95%",
    "rejection": "rejection 5%",
}


def _is_true(value: object) -> bool:
    return isinstance(value, (bool, np.bool_)) and bool(value)


def summary_table(summary: pd.DataFrame, *, measures: list[str] | None = None, digits: int = 3) -> pd.DataFrame:
    """The summary as a researcher reads it: one row per design, method and term, truth beside the mean.

    Columns: ``design`` (readable parameters), ``method``, ``term``, ``n`` (successful replications,
    ``+k failed`` when some failed), ``truth``, then each measure as ``value (MCSE)``, and
    ``warned`` (share of fits that raised a causalcts warning) when any did, and ``auto chose`` (the paths
    ``method = "auto"`` took) when the grid has such a method.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.evaluation.montecarlo import summary_table
    >>> s = pd.DataFrame({"design": ["T=8"], "method": ["within"], "term": ["x"], "n": [100], "n_failed": [0],
    ...                   "truth": [0.5], "mean": [0.4], "mean_mcse": [0.01], "bias": [-0.1], "bias_mcse": [0.01]})
    >>> summary_table(s, measures=["mean", "bias"]).iloc[0].tolist()
    ['T=8', 'within', 'x', '100', '0.5', '0.400 (0.010)', '-0.100 (0.010)']
    """
    measures = measures or [m for m in TABLE_MEASURES if m in summary.columns]
    rows = []
    for _, r in summary.iterrows():
        n = str(int(r["n"])) + (f" +{int(r['n_failed'])} failed" if r.get("n_failed", 0) else "")
        row = {
            "design": r.get("design", r.get("design_id", "")),
            "method": r["method"],
            "term": r["term"],
            "n": n,
            "truth": _fmt(r["truth"]) + (" (mean; varies)" if _is_true(r.get("truth_varies")) else ""),
        }
        for m in measures:
            v, e = r.get(m, np.nan), r.get(f"{m}_mcse", np.nan)
            row[TABLE_MEASURES.get(m, m)] = "" if pd.isna(v) else f"{v:.{digits}f} ({e:.{digits}f})"
        if "warned_share" in summary.columns and (summary["warned_share"] > 0).any():
            row["warned"] = f"{r['warned_share']:.0%}"
        if "chosen" in summary.columns and (summary["chosen"].fillna("") != "").any():
            row["auto chose"] = r["chosen"] if isinstance(r["chosen"], str) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(summary: pd.DataFrame, *, measures: list[str] | None = None, digits: int = 4) -> str:
    """A markdown table of :func:`summary_table` (each measure as ``value (MCSE)``)."""
    table = summary_table(summary, measures=measures, digits=digits)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    shared = summary.attrs.get("shared", "")
    head = f"All designs: {shared}. " if shared else ""
    return head + "Each measure is the estimate (Monte Carlo SE).\n\n" + "\n".join(lines)
