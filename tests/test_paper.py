"""The paper builds end to end on small settings (``python paper/build.py --quick``), and fails when it should.

Runs the quick build once (about half a minute on 2 cores; a tiny grid, a small SBC, a small analyze example) into
a temporary folder and checks the PDF: pages, sections, figures, every number filled in.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "paper" / "build.py"

importlib.import_module("typst")
sys.path.insert(0, str(ROOT / "paper"))
import build as paper_build  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paper")
    proc = subprocess.run(
        [sys.executable, str(BUILD), "--quick", "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_quick_build_writes_a_full_paper(quick):
    pdf = quick / "paper.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert paper_build.count_pages(pdf) >= 8
    info = paper_build.check_document(quick)  # raises if a section is missing or fewer than 5 figures
    assert info["figures"] >= 5
    for section in paper_build.REQUIRED_SECTIONS:
        assert section in info["sections"]
    assert (quick / "REPRODUCE.md").exists() and "| file | causalcts version | date |" in (
        quick / "REPRODUCE.md"
    ).read_text()


def test_every_number_the_manuscript_asks_for_is_filled(quick):
    doc = json.loads((quick / "generated" / "numbers.json").read_text())
    text = re.sub(r"(?m)^\s*//.*$", "", (ROOT / "paper" / "paper.typ").read_text())  # not the comments
    keys = set(re.findall(r'\bn\("([^"]+)"\)', text))
    assert len(keys) > 100
    # keys of sections switched off by a flag may be absent; every other one must be there
    optional: tuple[str, ...] = ("example.sav.", "example.truth.")
    if not doc["flags"].get("paper_run"):  # the paper grid's paragraphs are switched off without its summary
        optional += ("study_paper.",)
    if not doc["flags"].get("paper_timed"):  # the run-time sentence needs the grid's timing.json
        optional += tuple(f"study_paper.{k}" for k in ("wall_", "fits", "fit_minutes", "bayes_pct"))
    if not doc["flags"].get("paper_workers"):  # known from the grid's run log (runs.json) only
        optional += ("study_paper.workers",)
    if not doc["flags"].get("exog_run"):  # the exogeneity results switch their paragraph off when absent
        optional += tuple(f"exog.{d}." for d in ("feedback", "selection", "heterogeneity", "mediator", "cohort")) + (
            "exog.n_met", "exog.neg_", "exog.cpu_", "exog.fits")  # fmt: skip
    missing = [k for k in keys if k not in doc["values"] and not k.startswith(optional)]
    assert missing == []
    figs = set(re.findall(r'#fig\("([^"]+)"', text))
    assert {f for f in figs if not f.startswith("paper_")} <= set(doc["figures"])
    for path in doc["figures"].values():
        assert (quick / path).stat().st_size > 1000
    readme = (quick / "benchmarks-README.md").read_text()
    assert "{{" not in readme
    assert "| design | method | term | bias (MCSE) | RMSE (MCSE) |" in readme  # the generated table
    assert "bayes (recommended)" not in readme  # not the hand-typed one it replaces
    assert doc["values"]["headline.reps"] in readme


def test_sbc_records_the_simulations_it_ran(quick):
    sbc = json.loads((quick / "results" / "sbc.json").read_text())
    assert {v["design"]["n_sims"] for v in sbc.values()} == {8}
    assert "--sims 8" in (quick / "REPRODUCE.md").read_text()


def test_an_unfilled_number_or_a_missing_figure_stops_the_build(quick, tmp_path):
    for name in ("paper.typ", "template.typ", "refs.bib"):
        shutil.copy(quick / name, tmp_path / name)
    shutil.copytree(quick / "generated", tmp_path / "generated")
    import typst

    typst.compile(str(tmp_path / "paper.typ"), output=str(tmp_path / "ok.pdf"), root=str(tmp_path))
    broken = (tmp_path / "paper.typ").read_text() + '\nThe effect is #n("no.such.number").\n'
    (tmp_path / "paper.typ").write_text(broken)
    with pytest.raises(Exception, match="unfilled number: no.such.number"):
        typst.compile(str(tmp_path / "paper.typ"), output=str(tmp_path / "x.pdf"), root=str(tmp_path))
    (tmp_path / "paper.typ").write_text((quick / "paper.typ").read_text() + '\n#fig("no_such_figure", [x])\n')
    with pytest.raises(Exception, match="missing figure: no_such_figure"):
        typst.compile(str(tmp_path / "paper.typ"), output=str(tmp_path / "x.pdf"), root=str(tmp_path))


def test_a_template_placeholder_without_a_number_fails(tmp_path):
    import argparse

    b = paper_build.Build(argparse.Namespace(quick=True, out=str(tmp_path), rerun=False, example="steady"))
    c = type("C", (), {"values": {"a.b": "1"}, "tables": {}})()
    (tmp_path / "t.in").write_text("x {{a.b}} y {{no.such}}\n")
    with pytest.raises(paper_build.BuildError, match="no.such"):
        b.render_readme(c, tmp_path / "t.in", tmp_path / "t.md")
    (tmp_path / "t.in").write_text("x {{a.b}}\n")
    b.render_readme(c, tmp_path / "t.in", tmp_path / "t.md")
    assert (tmp_path / "t.md").read_text() == "x 1\n"


def test_the_exogeneity_study_is_in_the_quick_paper_when_its_summary_exists(quick):
    """--quick reads the committed exogeneity summary (as it does the headline grid's) and judges its criteria."""
    summary = ROOT / "benchmarks" / "results" / "exogeneity" / "summary.parquet"
    doc = json.loads((quick / "generated" / "numbers.json").read_text())
    assert doc["flags"]["exog_run"] == summary.exists()
    assert "exog_designs" in doc["tables"]
    if not summary.exists():
        return
    check = doc["tables"]["exog_check"]
    assert [r[0] for r in check["rows"]] == ["feedback", "selection", "heterogeneity", "mediator", "cohort"]
    assert all(r[-1] in ("meets", "fails") for r in check["rows"])
    assert doc["values"]["exog.n_met"] == str(sum(r[-1] == "meets" for r in check["rows"]))
    assert len(doc["tables"]["exog_ai_share"]["rows"]) == 5 * 8  # designs x methods of the grid file
    assert {"exog_ai_share", "exog_L1_cr_velocity"} <= set(doc["figures"])
    assert "| design | recommended method |" in (quick / "benchmarks-README.md").read_text()
    rep = (quick / "REPRODUCE.md").read_text()
    assert "causalcts bench recovery --grid exogeneity" in rep and "| 20261209 |" in rep


def test_criteria_that_disagree_with_the_grid_file_stop_the_build(tmp_path):
    sys.path.insert(0, str(ROOT / "paper" / "scripts"))
    import paper_numbers as pn

    grid = ROOT / "causalcts" / "evaluation" / "grids" / "exogeneity.toml"
    crit = (ROOT / "paper" / "criteria.toml").read_text()
    c = pn.Collected()
    pn.exogeneity(c, None, grid, ROOT / "paper" / "criteria.toml")  # no results: the designs only
    assert c.flags["exog_run"] is False and c.values["exog.seed"] == "20261209"
    assert c.values["exog.mediator.total_effect"] == "\u22120.15"
    bad = tmp_path / "criteria.toml"
    bad.write_text(crit.replace('feedback = "ml-pre"', 'feedback = "bias-corrected"'))
    with pytest.raises(ValueError, match="feedback: recommended method"):
        pn.exogeneity(pn.Collected(), None, grid, bad)
    bad.write_text(crit.replace("bias_abs_max = 0.01", "bias_abs_max = 0.02"))
    with pytest.raises(ValueError, match="are not the grid's"):
        pn.exogeneity(pn.Collected(), None, grid, bad)


def test_template_blocks_follow_their_flag(tmp_path):
    import argparse

    b = paper_build.Build(argparse.Namespace(quick=True, out=str(tmp_path), rerun=False, example="steady"))
    (tmp_path / "t.in").write_text("a {{#if on}}yes {{x.y}}{{else}}no{{/if}} b\n")
    for on, want in ((True, "a yes 1 b\n"), (False, "a no b\n")):
        c = type("C", (), {"values": {"x.y": "1"}, "tables": {}, "flags": {"on": on}})()
        b.render_readme(c, tmp_path / "t.in", tmp_path / "t.md")
        assert (tmp_path / "t.md").read_text() == want


def test_template_blocks_nest(tmp_path):
    import argparse

    b = paper_build.Build(argparse.Namespace(quick=True, out=str(tmp_path), rerun=False, example="steady"))
    (tmp_path / "t.in").write_text("A{{#if a}}B{{#if b}}C{{/if}}D{{else}}E{{/if}}F\n")
    for flags, want in (({}, "AEF\n"), ({"a": True}, "ABDF\n"), ({"a": True, "b": True}, "ABCDF\n")):
        c = type("C", (), {"values": {}, "tables": {}, "flags": flags})()
        b.render_readme(c, tmp_path / "t.in", tmp_path / "t.md")
        assert (tmp_path / "t.md").read_text() == want


def test_paper_grid_verdicts_apply_the_criteria_to_every_method():
    """paper_numbers.judge: a bias above the bound fails (b), a coverage interval wholly outside the band fails (c),
    an interval that straddles the band's edge is consistent with it (it cannot be certified at this n)."""
    sys.path.insert(0, str(ROOT / "paper" / "scripts"))
    import pandas as pd
    import paper_numbers as pn

    crit = {"bias_over_emp_se_max": 0.1, "coverage90_band": [0.87, 0.93]}
    mcse = (0.9 * 0.1 / 500) ** 0.5  # 0.0134: the MCSE of a 90 percent coverage with 500 replications
    s = pd.DataFrame(
        {
            "design": ["d"] * 4,
            "term": ["ai_share"] * 4,
            "method": ["within", "bias-corrected", "sys-gmm", "bayes"],
            "bias": [0.002, 0.0005, 0.0005, 0.0005],
            "emp_se": [0.01] * 4,
            "coverage90": [0.90, 0.90, 0.80, 0.86],
            "coverage90_mcse": [mcse] * 4,
        }
    )
    j = pn.judge(s, crit).set_index("method")
    assert j.loc["within", ["bias_ok", "cov_out", "consistent"]].tolist() == [False, False, False]  # 0.2 SE > 0.1
    assert j.loc["bias-corrected", "consistent"]
    assert j.loc["sys-gmm", ["bias_ok", "cov_out"]].tolist() == [True, True]  # 0.80 + 1.96 * 0.0134 < 0.87
    assert j.loc["bayes", "consistent"]  # 0.86 + 0.026 reaches into the band
    (row,) = pn._verdict_rows(pn.judge(s, crit), list(pn.METHOD_NAMES))
    assert row == ["d", "ai_share", "bias-corrected FE, Bayesian dynamic panel", "within (FE) (b), system GMM (c)"]


def test_the_paper_grid_is_in_the_quick_paper_when_its_summary_exists(quick):
    """--quick reads the committed paper-grid summary: its verdict table has a row per design and term."""
    summary = ROOT / "benchmarks" / "results" / "paper" / "summary.parquet"
    doc = json.loads((quick / "generated" / "numbers.json").read_text())
    assert doc["flags"]["paper_run"] == summary.exists()
    if not summary.exists():
        return
    import pandas as pd

    s = pd.read_parquet(summary)
    rows = doc["tables"]["verdict_paper"]["rows"]
    assert len(rows) == s["design_id"].nunique() * s["term"].nunique()
    assert [int(r[0].split(":")[0]) for r in rows] == sorted(int(r[0].split(":")[0]) for r in rows)  # grid order
    # every method of the grid is judged in every row, once
    grid = json.loads((summary.parent / "grid.json").read_text())
    for r in rows:
        judged = [m for cell in r[2:] for m in cell.split(", ") if m != "none"]
        assert len(judged) == len(grid["methods"]), r
