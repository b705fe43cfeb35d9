"""The demo and the README show only specifications the exogeneity checks allow (issue 9, item 5).

``causalcts demo`` runs the checks on its own data before it fits; with the simulator's defaults they pass,
so its GMM fits may use ``ai_share`` as a standard instrument. With feedback the share's lead test fails
and the demo switches its GMM fits to the share predetermined and its recommendation to ML-SEM. The
README's first example must pass every check (its text says so) and its feedback example must fail the
share's lead test (its text says so too).
"""

import inspect
import re
from pathlib import Path

import causalcts
from causalcts.demo import FORMULA, TREATMENT, run_demo

README = Path(__file__).resolve().parents[1] / "README.md"


def _quiet(*_args):
    return None


def test_demo_defaults_pass_every_check():
    # the demo's own defaults, read from its signature, so a change there is checked here
    d = {k: v.default for k, v in inspect.signature(run_demo).parameters.items()}
    sim = causalcts.simulate(
        d["n_teams"],
        d["n_weeks"],
        effect=d["effect"],
        persistence=d["persistence"],
        feedback=d["feedback"],
        seed=d["seed"],
    )
    checks = causalcts.check_exogeneity(FORMULA, sim.data, treatment=TREATMENT)
    assert set(checks["test"]) == {"lead", "responds to treatment"}
    assert (checks["verdict"] != "fail").all(), checks[["test", "pvalue", "verdict"]]


def test_demo_prints_the_checks_and_the_recommendation(tmp_path):
    lines: list[str] = []
    rep = run_demo(tmp_path, n_teams=60, n_weeks=12, echo=lambda *a: lines.append(" ".join(map(str, a))))
    text = "\n".join(lines)
    assert "Exogeneity checks" in text and "responds to treatment" in text
    assert "use it as a standard instrument" in text
    assert "Recommended: method='bias-corrected'" in text
    assert rep.checks.loc[rep.checks["test"] == "lead"].loc[TREATMENT, "verdict"] != "fail"
    assert list(rep.table.index) == [
        "within (fixed effects)",
        "half-panel jackknife",
        "bias-corrected FE",
        "difference GMM",
        "system GMM",
        "recommended by the checks (bias-corrected)",
    ]
    # the recommendation is the bias-corrected fit itself, not another estimate
    assert rep.table.iloc[-1].equals(rep.table.loc["bias-corrected FE"])


def test_demo_with_feedback_declares_the_share_predetermined(tmp_path):
    lines: list[str] = []
    rep = run_demo(tmp_path, n_teams=150, n_weeks=10, feedback=2.0, echo=lambda *a: lines.append(" ".join(map(str, a))))
    assert rep.checks.loc[rep.checks["test"] == "lead"].loc[TREATMENT, "verdict"] == "fail"
    assert "fails its lead test" in "\n".join(lines)
    assert "difference GMM (ai_share predetermined)" in rep.table.index
    assert "system GMM (ai_share predetermined)" in rep.table.index
    assert "difference GMM" not in rep.table.index  # the rejected specification is not shown
    assert rep.table.index[-1] == "recommended by the checks (ml)"


def _readme_python() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def _assignments(block: str, names: tuple[str, ...]) -> dict:
    """Run the block's one-line assignments to ``names`` (its simulate calls and formulas), nothing else."""
    ns: dict = {"causalcts": causalcts}
    for line in block.splitlines():
        if re.match(rf"^({'|'.join(names)}) = ", line):
            exec(line, ns)
    return ns


def test_readme_first_example_passes_every_check():
    block = next(b for b in _readme_python() if "check_exogeneity(f, sim.data" in b)
    ns = _assignments(block, ("sim", "f"))
    checks = causalcts.check_exogeneity(ns["f"], ns["sim"].data, treatment="ai_share")
    assert (checks["verdict"] == "pass").all(), checks[["test", "pvalue", "verdict"]]


def test_readme_feedback_example_fails_the_share_lead_test():
    block = next(b for b in _readme_python() if "feedback=" in b)
    ns = _assignments(block, ("fb", "f2"))
    assert ns["fb"].design.feedback > 0
    checks = causalcts.check_exogeneity(ns["f2"], ns["fb"].data, treatment="ai_share")
    assert checks.loc[checks["test"] == "lead"].loc["ai_share", "verdict"] == "fail"
