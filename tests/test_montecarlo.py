"""Monte Carlo recovery studies: seeds, resume, engines, summaries with MCSE, and the smoke grid."""

import dataclasses
import importlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalcts.cli import main
from causalcts.errors import CausalCTSError, SpecificationError
from causalcts.evaluation.montecarlo import (
    cell_seed,
    design_id,
    grid_names,
    known_methods,
    load_grid,
    load_results,
    run_cell,
    run_grid,
    summarize,
    summary_markdown,
)

TINY = textwrap.dedent("""
    [grid]
    name = "tiny"
    formula = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
    outcome = "cr_velocity"
    terms = ["L1.cr_velocity", "ai_share"]
    replications = 2
    seed = 5

    [[design]]
    n_teams = 40
    n_weeks = [6, 8]
    effect = 0.1

    [methods]
    within = { method = "within" }
    broken = { method = "diff-gmm", gmm = { cr_velocity = [5, 1] } }
    bayes = { method = "bayes", chains = 1, draws = 30, tune = 30, team_effect_draws = 1 }
""")


# 10 teams, 12 weeks and every lag of the outcome as an instrument: the instrument count (65) exceeds the
# number of teams whatever the draw, so difference GMM raises InstrumentWarning in every replication.
WARN = textwrap.dedent("""
    [grid]
    name = "warn"
    formula = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
    outcome = "cr_velocity"
    terms = ["L1.cr_velocity", "ai_share"]
    replications = 2
    seed = 3

    [[design]]
    n_teams = 10
    n_weeks = 12
    effect = 0.1

    [methods]
    within = { method = "within" }
    many-instruments = { method = "diff-gmm", gmm = { cr_velocity = [2, -1] } }
""")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return load_grid(path)


def test_grid_expands_designs(tiny):
    assert [d["n_weeks"] for d in tiny.designs] == [6, 8]
    assert tiny.methods["broken"]["gmm"] == {"cr_velocity": (5, 1)}
    shipped = "exogeneity, headline, paper, smoke"
    with pytest.raises(CausalCTSError, match=f"No grid 'no-such-grid': the package ships {shipped}"):
        load_grid("no-such-grid")


def test_shipped_grids_load_from_the_package_not_the_checkout():
    """The grids live in causalcts/evaluation/grids (package data), so a wheel install finds them."""
    import causalcts.evaluation

    assert grid_names() == ["exogeneity", "headline", "paper", "smoke"]
    here = Path(causalcts.evaluation.__file__).parent / "grids"
    for name in grid_names():
        assert (here / f"{name}.toml").is_file()
        grid = load_grid(name)
        # every method is a registered one, or "auto": causalcts.diagnostics.fit_auto, the recommended path
        assert grid.name == name and set(m["method"] for m in grid.methods.values()) <= {*known_methods(), "auto"}


def test_grid_methods_and_design_keys_are_checked(tmp_path):
    from causalcts import registry

    assert known_methods() == registry.names()  # the registry's list, not one of our own
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace('within = { method = "within" }', 'fe = { method = "within-fe" }'))
    with pytest.raises(SpecificationError, match=r"\[methods\] fe has method = 'within-fe'.*diff-gmm"):
        load_grid(bad)
    bad.write_text(TINY.replace('within = { method = "within" }', 'within = { method = "within", collapse = true }'))
    with pytest.raises(SpecificationError, match=r"\[methods\] within: .*collapse"):
        load_grid(bad)
    bad.write_text(TINY.replace("effect = 0.1", "efect = 0.1"))
    with pytest.raises(SpecificationError, match=r"design 1 sets \['efect'\], which simulate\(\) does not take"):
        load_grid(bad)


def test_cell_is_reproducible_alone_and_seeds_depend_on_design_and_replication(tiny):
    a = run_cell(tiny, tiny.designs[0], 1)
    b = run_cell(tiny, tiny.designs[0], 1)
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    s = {tuple(cell_seed(5, d, r).generate_state(2)) for d in tiny.designs for r in range(3)}
    assert len(s) == 6
    assert design_id(tiny.designs[0]) != design_id(tiny.designs[1])


def test_failed_fits_are_recorded_not_dropped(tiny):
    df = run_cell(tiny, tiny.designs[0], 0)
    broken = df[df["method"] == "broken"]
    assert len(broken) == 2 and broken["estimate"].isna().all()
    assert broken["error"].str.contains("SpecificationError").all()
    assert (df.loc[df["method"] == "within", "error"] == "").all()


def test_resume_skips_finished_cells(tiny, tmp_path):
    out = tmp_path / "run"
    first = run_grid(tiny, out, workers=1, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}
    assert len(stamps) == 4
    second = run_grid(tiny, out, workers=1, progress=False)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}
    pd.testing.assert_frame_equal(first, second)


def test_dask_engine_gives_the_same_numbers_as_local(tiny, tmp_path):
    importlib.import_module("dask.distributed")
    local = run_grid(tiny, tmp_path / "local", workers=1, progress=False)
    dask = run_grid(tiny, tmp_path / "dask", engine="dask", workers=2, progress=False)
    pd.testing.assert_frame_equal(local.drop(columns="seconds"), dask.drop(columns="seconds"))


def test_package_warnings_are_recorded_in_the_results_on_every_engine(tmp_path):
    """A fit that warns is kept, and its warnings land in the table: spawned local processes and Dask alike."""
    importlib.import_module("dask.distributed")
    path = tmp_path / "warn.toml"
    path.write_text(WARN)
    grid = load_grid(path)
    local = run_grid(grid, tmp_path / "local", workers=2, progress=False)  # 2 workers: the spawn pool
    dask = run_grid(grid, tmp_path / "dask", engine="dask", workers=2, progress=False)
    pd.testing.assert_frame_equal(local.drop(columns="seconds"), dask.drop(columns="seconds"))
    gmm = local[local["method"] == "many-instruments"]
    assert len(gmm) == 4 and gmm["estimate"].notna().all()
    assert gmm["warnings"].str.contains("InstrumentWarning: 65 instruments exceed the 10 entities").all()
    assert (local.loc[local["method"] == "within", "warnings"] == "").all()
    s = summarize(local).set_index(["method", "term"])
    assert (s.loc["many-instruments", "InstrumentWarning_share"] == 1.0).all()
    assert (s.loc["within", "warned_share"] == 0.0).all()
    assert "warned" in summary_markdown(summarize(local))


def test_summary_measures_and_mcse_by_hand():
    rng = np.random.default_rng(0)
    n = 400
    est = 1.0 + 0.1 + rng.normal(0, 0.5, n)
    se = np.full(n, 0.5)
    df = pd.DataFrame(
        {
            "design_id": "d",
            "replication": range(n),
            "method": "m",
            "term": "x",
            "estimate": est,
            "std_error": se,
            "lower90": est - 1.6449 * se,
            "upper90": est + 1.6449 * se,
            "lower95": est - 1.96 * se,
            "upper95": est + 1.96 * se,
            "truth": 1.0,
            "converged": True,
            "seconds": 0.0,
            "error": "",
        }
    )
    s = summarize(df).iloc[0]
    assert s["bias"] == pytest.approx(np.mean(est - 1.0))
    assert s["bias_mcse"] == pytest.approx(np.std(est, ddof=1) / np.sqrt(n))
    assert s["emp_se"] == pytest.approx(np.std(est, ddof=1))
    assert s["emp_se_mcse"] == pytest.approx(np.std(est, ddof=1) / np.sqrt(2 * (n - 1)))
    assert s["model_se"] == pytest.approx(0.5)
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((est - 1) ** 2)))
    cov = np.mean(np.abs(est - 1.0) <= 1.6449 * 0.5)
    assert s["coverage90"] == pytest.approx(cov)
    assert s["coverage90_mcse"] == pytest.approx(np.sqrt(cov * (1 - cov) / n))
    assert s["mean"] == pytest.approx(np.mean(est))
    assert "| d | m | x | 400 | 1 |" in summary_markdown(summarize(df))


def test_cli_bench_recovery_and_report(tmp_path, capsys):
    grid = tmp_path / "tiny.toml"
    grid.write_text(TINY.replace("n_weeks = [6, 8]", "n_weeks = [6, 10]"))
    out = tmp_path / "run"
    assert main(["bench", "recovery", "--grid", str(grid), "--out", str(out), "--workers", "1"]) == 0
    assert "24 rows, 8 failed fits recorded" in capsys.readouterr().out
    assert main(["bench", "report", str(out)]) == 0
    printed = capsys.readouterr().out
    # the table itself, designs by their parameters (not a hash), the truth beside the mean estimate
    assert "All designs: N=40, effect=0.1." in printed
    assert design_id(load_grid(grid).designs[0]) not in printed
    header = next(line for line in printed.splitlines() if line.lstrip().startswith("design"))
    assert header.split()[:6] == ["design", "method", "n", "truth", "mean", "estimate"]
    row = next(line for line in printed.splitlines() if line.lstrip().startswith("T=6") and "within" in line)
    assert row.split()[:4] == ["T=6", "within", "2", "0.5"]  # truth of L1.cr_velocity is the persistence 0.5
    assert printed.index("T=6") < printed.index("T=10")  # designs in the order of their parameters
    broken = next(line for line in printed.splitlines() if line.lstrip().startswith("T=6") and "broken" in line)
    assert broken.split()[:5] == ["T=6", "broken", "0", "+2", "failed"]  # its 2 failed fits are counted, not hidden
    assert "4 fits failed" in printed
    assert (out / "summary.md").exists() and (out / "bias_vs_T_L1_cr_velocity.png").exists()
    assert len(load_results(out)) == 2 * 2 * 3 * 2
    # the run is logged and the report says how long it took: 4 cells of 3 methods, one run of 1 worker
    (run,) = json.loads((out / "runs.json").read_text())
    assert (run["cells_planned"], run["cells_done"], run["completed"], run["workers"]) == (4, 4, True, 1)
    timing = json.loads((out / "timing.json").read_text())
    assert (timing["cells"], timing["fits"], timing["wall_seconds"]) == (4, 12, run["wall_seconds"])
    assert sorted(timing["fit_seconds_by_method"]) == ["bayes", "broken", "within"]
    assert 0 < timing["fit_seconds"] <= run["wall_seconds"]  # one worker: the fits fit inside the wall time
    # a rerun with nothing to do logs nothing
    assert main(["bench", "recovery", "--grid", str(grid), "--out", str(out), "--workers", "1"]) == 0
    assert len(json.loads((out / "runs.json").read_text())) == 1


def test_smoke_grid_negative_controls_and_recovery(tmp_path):
    """The smoke grid (causalcts/evaluation/grids/smoke.toml) with its pre-registered negative controls."""
    results = run_grid("smoke", tmp_path / "smoke", progress=False)
    s = summarize(results).set_index(["method", "term", "n_weeks", "persistence", "effect"])
    L1 = "L1.cr_velocity"
    # the within estimator loses coverage of persistence at small T (Nickell bias)
    assert s.loc[("within", L1, 8, 0.5, 0.1), "coverage90"] < 0.5
    # difference GMM weakens as persistence nears 1: its sampling spread at least doubles
    assert s.loc[("diff-gmm", L1, 8, 0.95, 0.1), "emp_se"] > 2 * s.loc[("diff-gmm", L1, 8, 0.5, 0.1), "emp_se"]
    # under a null effect the rejection rate of the recommended method sits at the 5 percent size
    null = s.loc[("bayes", "ai_share", 8, 0.5, 0.0)]
    assert abs(null["rejection"] - 0.05) < 3 * np.sqrt(0.05 * 0.95 / null["n"])
    # the recommended method recovers the effect and the persistence at T = 26 (bias within 3 MCSE)
    for term in (L1, "ai_share"):
        row = s.loc[("bayes", term, 26, 0.5, 0.1)]
        assert abs(row["bias"]) < 3 * row["bias_mcse"] + 1e-12
    assert (results["error"] == "").all()


def test_design_labels_name_knobs_that_only_some_designs_set():
    """A knob set in one design only (NaN elsewhere) varies between designs: pandas' nunique drops NaN by default,
    which once labelled every design with every knob and called selection=1 'shared' (regression test)."""
    from causalcts.evaluation.montecarlo import _design_labels, design_label

    results = pd.DataFrame(
        {"design_id": ["a", "b"], "n_teams": [300, 300], "selection": [1.0, np.nan], "feedback": [np.nan, 1.0]}
    )
    labels, shared = _design_labels(results, ["n_teams", "selection", "feedback"])
    assert labels == {"a": "selection=1", "b": "feedback=1"}
    assert shared == ["n_teams"]
    assert design_label({"selection": np.nan}) == "defaults"


# A mediator design, the recommended path itself (method "auto") and a method with its own formula (the total
# effect: the model without the mediator rollback_rate).
PATHS = textwrap.dedent("""
    [grid]
    name = "paths"
    formula = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate"
    outcome = "cr_velocity"
    terms = ["ai_share"]
    replications = 2
    seed = 9

    [[design]]
    n_teams = 60
    n_weeks = 8
    effect = 0.1
    mediation = 0.5

    [methods]
    within = { method = "within" }
    auto = { method = "auto", treatment = "ai_share" }
    within-total = { method = "within", formula = "cr_velocity ~ L(cr_velocity, 1) + ai_share" }
""")


@pytest.fixture
def paths(tmp_path):
    path = tmp_path / "paths.toml"
    path.write_text(PATHS)
    return load_grid(path)


def test_auto_and_own_formula_methods_record_the_path_and_the_right_truth(paths):
    import causalcts
    from causalcts.diagnostics import fit_auto
    from causalcts.simulate import simulate

    df = run_cell(paths, paths.designs[0], 0).set_index("method")
    # direct effect 0.1 with the mediator in the model, total effect 0.1 - 0.5 * 0.5 = -0.15 without it
    assert df.loc["within", "truth"] == 0.1
    assert df.loc["within-total", "truth"] == pytest.approx(-0.15)
    assert (df["error"] == "").all() and df.loc["within", "chosen"] == ""
    # the auto row is fit_auto's main estimate on the cell's panel, and its truth follows the model it fitted
    sim_seed = int(cell_seed(9, paths.designs[0], 0).spawn(2)[0].generate_state(1)[0])
    sim = simulate(**paths.designs[0], seed=sim_seed)
    res = fit_auto(paths.formula, sim.data, treatment="ai_share")
    assert df.loc["auto", "estimate"] == res.params["ai_share"]
    dropped = res.info["auto"]["dropped"]
    assert df.loc["auto", "chosen"] == " ".join([res.method, *(f"-{c}" for c in dropped)])
    assert df.loc["auto", "truth"] == pytest.approx(-0.15 if "rollback_rate" in dropped else 0.1)
    plain = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="within")
    assert df.loc["within-total", "estimate"] == plain.params["ai_share"]


def test_auto_and_formula_entries_are_checked(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(PATHS.replace('treatment = "ai_share"', 'treatment = "ai_share", collapse = true'))
    with pytest.raises(SpecificationError, match=r"\[methods\] auto .*fit_auto\) does not take \['collapse'\]"):
        load_grid(bad)
    bad.write_text(PATHS.replace('auto = { method = "auto", treatment = "ai_share" }', 'auto = { method = "auto" }'))
    with pytest.raises(SpecificationError, match=r'\[methods\] auto \(method = "auto"\) needs treatment'):
        load_grid(bad)
    bad.write_text(PATHS.replace('+ ai_share" }', '+ L(ai_share, -1)" }'))
    with pytest.raises(SpecificationError, match=r"\[methods\] within-total: formula: "):
        load_grid(bad)


def test_added_methods_are_fitted_into_finished_cells_and_old_rows_are_kept(paths, tmp_path):
    """A rerun after methods were added fits only those, on the same panel, and keeps the finished rows."""
    out = tmp_path / "run"
    first_methods = {"within": paths.methods["within"]}
    first = run_grid(dataclasses.replace(paths, methods=first_methods), out, workers=1, progress=False)
    assert set(first["method"]) == {"within"}
    full = run_grid(paths, out, workers=1, progress=False)
    assert set(full["method"]) == {"within", "auto", "within-total"} and len(full) == 2 * 3
    kept = full[full["method"] == "within"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept[first.columns], first)  # the finished fits, untouched (seconds too)
    fresh = pd.concat([run_cell(paths, paths.designs[0], r) for r in range(2)])
    cols = ["replication", "method", "term", "estimate", "std_error", "truth", "chosen"]
    key = ["replication", "method"]
    pd.testing.assert_frame_equal(
        full[cols].sort_values(key, ignore_index=True), fresh[cols].sort_values(key, ignore_index=True)
    )
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}
    run_grid(paths, out, workers=1, progress=False)  # nothing left to do
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}


def test_summary_compares_each_replication_with_its_own_truth_and_counts_paths():
    """auto may fit with or without the mediator, so each replication has its own truth."""
    est = np.array([0.1, 0.1, -0.15, -0.15])
    df = pd.DataFrame(
        {
            "design_id": "d",
            "replication": range(4),
            "method": "auto",
            "term": "ai_share",
            "estimate": est + np.array([0.01, -0.01, 0.02, 0.0]),
            "std_error": 0.005,
            "lower90": est - 0.012,
            "upper90": est + 0.012,
            "lower95": est - 0.015,
            "upper95": est + 0.015,
            "truth": est,
            "converged": True,
            "seconds": 0.0,
            "error": "",
            "chosen": ["bias-corrected", "bias-corrected", "bias-corrected -rollback_rate", "ml"],
        }
    )
    s = summarize(df).iloc[0]
    assert s["bias"] == pytest.approx(0.005) and s["truth_varies"]
    assert s["truth"] == pytest.approx(est.mean())
    assert s["coverage90"] == 1.0  # every interval holds its own truth (a single truth would cover half)
    assert s["chosen"] == "bias-corrected 50%, bias-corrected -rollback_rate 25%, ml 25%"
    md = summary_markdown(summarize(df))
    assert "auto chose" in md and "(mean; varies)" in md
