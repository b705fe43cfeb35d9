"""``causalcts analyze``: the report folder, its numbers, the recommendation rule on rollouts with known truth,
savings carried through from the estimate's distribution, atomic writing, several experiments pooled."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import causalcts
from causalcts.cli import main
from causalcts.errors import RangeError, SpecificationError
from causalcts.metrics import capacity_saved
from causalcts.workflows import analyze, analyze_experiment, parse_spec
from causalcts.workflows import savings as sv
from causalcts.workflows.checks import control_response, recommend

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "rollouts"
RAW = ["team", "week", "developers", "crs_merged", "deployments", "rollbacks", "interventions", "pages",
       "oncall_builders", "ai_share", "dev_cost"]  # fmt: skip
FAST = ["within", "bias-corrected", "diff-gmm"]  # the Bayesian fit is tested once, with few draws, below


def _spec(base, data="rollout.csv", **extra):
    table = {"name": "Small rollout", "data": data, "entity": "team", "time": "week", "treatment": "ai_share",
             "outcomes": ["cr_velocity", "deploys_per_builder"], "controls": ["rollback_rate"], "methods": FAST,
             **extra}  # fmt: skip
    return parse_spec(table, base=base)[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One analysis of 80 teams x 14 weeks, written once for the tests that read its folder."""
    folder = tmp_path_factory.mktemp("small")
    causalcts.simulate(80, 14, seed=5).data[RAW].to_csv(folder / "rollout.csv", index=False)
    res = analyze(_spec(folder, cost_per_developer_week=4000.0), folder / "report", progress=False)
    return res


# ------------------------------------------------------------------------------------------- the folder
def test_folder_holds_the_report_files_and_figures(small):
    out = small.out_dir
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.html", "report.md", "results.json"]
    figs = small.results["figures"]
    assert len(figs) >= 8  # audit (2) + per outcome estimates, event study, HonestDiD, TWFE weights (4 x 2)
    for f in figs:
        assert (out / f["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_json_has_the_documented_keys(small):
    r = json.loads((small.out_dir / "results.json").read_text())
    for y in ("cr_velocity", "deploys_per_builder"):
        o = r["outcomes"][y]
        assert {e["method"] for e in o["estimates"]} >= {"bias-corrected FE", "difference GMM, share predetermined"}
        for e in o["estimates"]:
            assert set(e) == {"method", "term", "estimate", "std_error", "lower", "upper", "level"}
            assert e["lower"] < e["estimate"] < e["upper"]
        assert set(o["recommended"]) >= {"method", "estimate", "std_error", "lower", "upper", "reason"}
        assert o["recommended"]["reason"]
        assert set(o["long_run"]) == {e["method"] for e in o["estimates"]}
        assert o["diagnostics"] and all(d["verdict"] in ("pass", "warn", "fail") for d in o["diagnostics"])
        for d in o["diagnostics"]:
            assert set(d) >= {"name", "variable", "statistic", "pvalue", "verdict"}
        names = " ".join(d["name"] for d in o["diagnostics"])
        for check in ("exogeneity", "AR(2)", "Hansen", "TWFE negative weights", "pre-trends", "HonestDiD"):
            assert check in names
    for key in ("engineering_years", "money"):
        block = r["savings"][key]
        assert block["lower"] < block["estimate"] < block["upper"]


def test_every_estimate_of_the_json_is_on_both_reports(small):
    """The HTML page and the Markdown file print the same numbers as results.json (4 significant digits)."""
    r = small.results
    html = (small.out_dir / "report.html").read_text()
    md = (small.out_dir / "report.md").read_text()
    for o in r["outcomes"].values():
        for e in o["estimates"]:
            text = f"{e['estimate']:.4g}"
            assert text in html and text in md, text
    years = f"{r['savings']['engineering_years']['estimate']:.4g}"
    assert years in html and years in md


def test_html_is_self_contained(small):
    html = (small.out_dir / "report.html").read_text()
    assert not re.search(r"(src|href)\s*=\s*\"(https?:)?//", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert html.count('src="data:image/png;base64,') == len(small.results["figures"])


# ------------------------------------------------------------------------------------------- writing
def test_a_failure_leaves_nothing_behind(tmp_path):
    sim = causalcts.simulate(40, 10, seed=2).data[RAW]
    sim.to_csv(tmp_path / "good.csv", index=False)
    sim.assign(ai_share=sim["ai_share"] * 100).to_csv(tmp_path / "bad.csv", index=False)
    specs = [_spec(tmp_path, "good.csv", methods=["within"]), _spec(tmp_path, "bad.csv", methods=["within"])]
    given = {k: v for k, v in specs[1].to_dict().items() if k not in ("source", "data_path") and v is not None}
    specs[1] = parse_spec({**given, "name": "Bad"}, base=tmp_path)[0]
    with pytest.raises(RangeError, match="ai_share"):
        analyze(specs, tmp_path / "report", progress=False)
    assert not (tmp_path / "report").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "good.csv"]  # no temporary folder either


def test_an_existing_folder_is_replaced_only_with_overwrite(tmp_path):
    causalcts.simulate(40, 10, seed=2).data[RAW].to_csv(tmp_path / "rollout.csv", index=False)
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.txt").write_text("old")
    spec = _spec(tmp_path, methods=["within"], outcomes=["cr_velocity"])
    with pytest.raises(SpecificationError, match="--overwrite"):
        analyze(spec, out, progress=False)
    assert (out / "old.txt").exists()
    analyze(spec, out, progress=False, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "report.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "rollout.csv"]


def test_cli_analyze_writes_the_report(tmp_path, capsys):
    causalcts.simulate(40, 10, seed=2).data[RAW].to_csv(tmp_path / "rollout.csv", index=False)
    (tmp_path / "spec.toml").write_text(
        'name = "CLI"\ndata = "rollout.csv"\nentity = "team"\ntime = "week"\ntreatment = "ai_share"\n'
        'outcomes = ["cr_velocity"]\nmethods = ["within"]\n'
    )
    code = main(["analyze", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "Wrote" in capsys.readouterr().out
    assert (tmp_path / "r" / "report.html").exists()


# ------------------------------------------------------------------------------------------- the rule, on known truth
def _example(name: str, **extra):
    table = {"name": name, "data": f"{name}.csv", "entity": "team", "time": "week", "treatment": "ai_share",
             "outcomes": ["cr_velocity"], "controls": ["rollback_rate", "interventions_per_deploy"],
             "methods": FAST, **extra}  # fmt: skip
    return analyze_experiment(parse_spec(table, base=EXAMPLES)[0])[0]["outcomes"]["cr_velocity"]


def test_adoption_that_reacts_to_outcomes_fails_exogeneity_and_gets_gmm():
    """examples/rollouts/feedback.csv: adoption responds to past cr_velocity (feedback 0.8 in the simulator)."""
    o = _example("feedback")
    exo = {d["name"]: d for d in o["diagnostics"] if d["name"].startswith("exogeneity")}
    assert exo["exogeneity: adoption responds to the past outcome"]["verdict"] == "fail"
    assert o["recommended"]["method_name"] == "diff-gmm"
    truth = json.loads((EXAMPLES / "feedback.truth.json").read_text())["truth"]["effect"]["cr_velocity"]
    rec = o["recommended"]
    assert rec["lower"] < truth < rec["upper"]  # the recommended 95% interval covers the truth (0.10) here


def test_exogenous_adoption_gets_the_bias_corrected_estimator():
    o = _example("steady")
    assert all(d["verdict"] != "fail" for d in o["diagnostics"] if d["name"].startswith("exogeneity"))
    assert o["recommended"]["method_name"] == "bias-corrected"
    assert o["flagged_controls"] == []


def test_a_mediator_control_is_flagged_and_left_out_of_the_recommended_fit():
    """examples/rollouts/mediator.csv: adoption raises the rollback rate (mediation 0.15)."""
    o = _example("mediator")
    assert o["flagged_controls"] == ["rollback_rate"]
    assert o["recommended"]["without_controls"] == ["rollback_rate"]
    without = o["without_flagged_controls"]
    assert without["controls"] == ["interventions_per_deploy"] and without["estimates"]
    # holding the mediator fixed keeps the direct effect; leaving it out gives the smaller total effect
    with_ = {e["method"]: e["estimate"] for e in o["estimates"] if e["term"] == "ai_share"}
    wo = {e["method"]: e["estimate"] for e in without["estimates"] if e["term"] == "ai_share"}
    assert wo["bias-corrected FE"] < with_["bias-corrected FE"]


def test_recommend_rule_orders():
    exo_fail = [{"name": "exogeneity: x", "verdict": "fail"}, {"name": "AR(2) in first differences (diff-gmm)",
                                                                "verdict": "fail"}]  # fmt: skip
    rec = recommend({"within": 1, "diff-gmm": 2}, exo_fail, flagged_controls=["rollback_rate"])
    assert rec["method"] == "diff-gmm" and "AR(2)" in rec["reason"] and "rollback_rate" in rec["reason"]
    assert recommend({"within": 1, "diff-gmm": 2}, [{"name": "exogeneity: x", "verdict": "warn"}])["method"] == "within"


def test_checks_do_not_mutate_the_frame():
    frame = causalcts.simulate(40, 10, seed=3).data
    copy = frame.copy(deep=True)
    control_response(frame, control="rollback_rate", share="ai_share", entity="team", time="week")
    pd.testing.assert_frame_equal(frame, copy)


def test_workflow_checks_are_the_shared_tests():
    """One code path: the report's lead and control rows are check_exogeneity's tests (same numbers, exactly)."""
    from causalcts.diagnostics import check_exogeneity
    from causalcts.workflows.checks import exogeneity_checks

    frame = causalcts.simulate(60, 10, feedback=1.0, mediation=0.3, seed=3).data
    f = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate"
    table = check_exogeneity(f, frame, treatment="ai_share", controls=["rollback_rate"])
    rows = exogeneity_checks(frame, outcome="cr_velocity", share="ai_share", controls=["rollback_rate"],
                             entity="team", time="week")  # fmt: skip
    lead = table[table["test"] == "lead"].loc["ai_share"]
    assert rows[0]["statistic"] == pytest.approx(lead["statistic"], rel=1e-10)  # shared design: round-off only
    assert rows[0]["pvalue"] == pytest.approx(lead["pvalue"], rel=1e-10)
    assert rows[0]["verdict"] == "fail"  # feedback: the share is predetermined, so the feedback-robust form is used
    ctrl = control_response(frame, control="rollback_rate", share="ai_share", entity="team", time="week",
                            share_predetermined=True)  # fmt: skip
    resp = table[table["test"] == "responds to treatment"].loc["rollback_rate"]
    assert (ctrl["statistic"], ctrl["pvalue"], ctrl["verdict"]) == (resp["statistic"], resp["pvalue"], resp["verdict"])
    assert rows[1]["name"] == "exogeneity: adoption responds to the past outcome" and rows[1]["verdict"] == "fail"


# ------------------------------------------------------------------------------------------- savings
def test_savings_match_a_hand_computation_and_capacity_saved():
    f = pd.DataFrame({"team": [1, 1, 1, 2, 2], "week": [0, 1, 2, 0, 2], "s": [0.0, 0.5, 1.0, 1.0, 1.0],
                      "y": [1.0, 1.2, 1.4, 1.0, 1.1], "developers": [2, 2, 2, 4, 4]})  # fmt: skip
    ins = sv.exposure_sums(f, entity="team", time="week", share="s", outcome="y", developers="developers",
                           cost_per_developer_week=1000.0)  # fmt: skip
    beta, gamma = 0.5, 0.2
    # team 1: E = 0.2*[0, 0.5, 1 + 0.5*0.5]; team 2 (week 1 missing: share 0): E = 0.2*[1, 1 + 0.25*1]
    effect = 0.2 * (2 * (0.5 + 1.25) + 4 * (1 + 1.25))
    output = 2 * (1.0 + 1.2 + 1.4) + 4 * (1.0 + 1.1)
    out = sv.savings(ins, persistence=beta, effect=gamma, persistence_draws=np.full(10, beta),
                     effect_draws=np.full(10, gamma), weeks_per_year=52.0)  # fmt: skip
    assert out["share_of_output"]["estimate"] == pytest.approx(effect / output, rel=1e-12)
    ref = capacity_saved(developer_weeks=14.0, dev_cost=14_000.0, throughput_change=effect / (output - effect))
    assert out["engineering_years"]["estimate"] == pytest.approx(ref.engineering_years, rel=1e-12)
    assert out["money"]["estimate"] == pytest.approx(ref.money, rel=1e-12)
    assert out["cts_change"]["estimate"] == pytest.approx(ref.cts_change, rel=1e-12)


def test_savings_intervals_come_from_the_estimate_distribution():
    sim = causalcts.simulate(80, 12, seed=8)
    res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="within")
    ins = sv.exposure_sums(sim.data, entity="team", time="week", share="ai_share", outcome="cr_velocity",
                           developers="developers")  # fmt: skip
    b, g, how = sv.parameter_draws(res, "L1.cr_velocity", "ai_share", n=4000, seed=1)
    assert "normal" in how
    # the draws reproduce the fit's covariance (4000 draws: MC error of an SD about 1.1%; 5% allowed)
    assert np.std(g, ddof=1) == pytest.approx(res.std_errors["ai_share"], rel=0.05)
    out = sv.savings(ins, persistence=res.params["L1.cr_velocity"], effect=res.params["ai_share"],
                     persistence_draws=b, effect_draws=g)  # fmt: skip
    ey = out["engineering_years"]
    assert ey["lower"] < ey["estimate"] < ey["upper"]
    # the interval's width follows the effect's standard error: share saved is linear in gamma given beta
    rel_width = (ey["upper"] - ey["lower"]) / ey["estimate"]
    expected = 2 * 1.96 * res.std_errors["ai_share"] / res.params["ai_share"]
    assert rel_width == pytest.approx(expected, rel=0.15)  # beta's own spread adds a little; 15% allowed
    # the simulator writes dev_cost, so the money saved is the same share of its sum
    assert "dev_cost" in out["cost_source"]
    assert out["money"]["estimate"] == pytest.approx(out["share_of_output"]["estimate"] * sim.data["dev_cost"].sum())


def test_bayesian_recommendation_uses_posterior_draws(tmp_path):
    causalcts.simulate(60, 10, seed=6).data[RAW].to_csv(tmp_path / "rollout.csv", index=False)
    spec = _spec(tmp_path, methods=["bayes"], outcomes=["cr_velocity"], bayes_draws=50, bayes_tune=50,
                 bayes_chains=1)  # fmt: skip
    r, _ = analyze_experiment(spec)
    assert r["outcomes"]["cr_velocity"]["recommended"]["method_name"] == "bayes"
    assert r["savings"]["draws_from"] == "50 posterior draws of the Bayesian fit"


# ------------------------------------------------------------------------------------------- several experiments
def test_several_experiments_get_subfolders_and_a_pooled_view(tmp_path):
    for seed, name in ((1, "a.csv"), (2, "b.csv")):
        causalcts.simulate(60, 10, seed=seed).data[RAW].to_csv(tmp_path / name, index=False)
    specs = [parse_spec({"name": n, "data": d, "entity": "team", "time": "week", "treatment": "ai_share",
                         "outcomes": ["cr_velocity"], "methods": ["within"], "bayes_draws": 100,
                         "bayes_tune": 100}, base=tmp_path)[0] for n, d in (("Rollout A", "a.csv"),
                                                                            ("Rollout B", "b.csv"))]  # fmt: skip
    res = analyze(specs, tmp_path / "report", progress=False)
    out = res.out_dir
    assert (out / "rollout_a" / "report.html").exists() and (out / "rollout_b" / "results.json").exists()
    r = res.results
    assert set(r["experiments"]) == {"rollout_a", "rollout_b"}
    pooled = r["pooled"]["outcomes"]["cr_velocity"]
    assert r["pooled"]["done"] and pooled["done"]
    own = [e["estimate"] for e in pooled["experiments"]]
    shrunk = [e["pooled_mean"] for e in pooled["experiments"]]
    # partial pooling pulls the two effects towards each other (each theta_j is a weighted mean of its own
    # estimate and mu); posterior means of 2 x 100 draws carry MC error, well below the gap between the estimates
    assert abs(shrunk[0] - shrunk[1]) < abs(own[0] - own[1])
    html = (out / "report.html").read_text()
    assert 'href="rollout_a/report.html"' in html and "Pooled view" in html


# ------------------------------------------------------------------------------------------- savings: assumption
def test_savings_state_their_basis_and_assumption(small):
    """Bug 3: every savings number comes with the outcome it rests on and the assumption behind it."""
    s = small.results["savings"]
    # CTS-SW is per deployment (the default unit) and deploys_per_builder is an outcome: the savings use it
    assert s["basis"] == "deploys_per_builder" == s["outcome"]
    assert s["assumption"].startswith("Assumes developer cost did not change with adoption")
    text = sv.describe(s)
    assert "implied CTS-SW change" in text and "deploys_per_builder" in text and s["assumption"] in text
    md = (small.out_dir / "report.md").read_text()
    html = (small.out_dir / "report.html").read_text()
    assert md.count("Assumes developer cost") >= 2  # the summary and the savings section
    assert "Assumes developer cost" in html
    # a velocity that is not counted in the CTS-SW unit is flagged as an untested assumption
    assert "not tested" in sv.assumption("cr_velocity", "deployments")


def test_direct_cts_estimate_is_set_beside_the_implied_change(tmp_path):
    """Bug 3: with log_cts estimated, the savings show its CTS-SW change and warn when the implied one is outside."""
    causalcts.simulate(60, 12, seed=3).data[RAW].to_csv(tmp_path / "rollout.csv", index=False)
    spec = _spec(tmp_path, outcomes=["cr_velocity", "log_cts"], methods=["within"])
    r, _ = analyze_experiment(spec)
    s = r["savings"]
    assert s["basis"] == "cr_velocity" and "not tested" in s["assumption"]  # no deployment outcome
    d = s["direct"]
    assert d["outcome"] == "log_cts" and d["lower"] <= d["estimate"] <= d["upper"]
    assert d["verdict"] == ("pass" if d["lower"] <= s["cts_change"]["estimate"] <= d["upper"] else "warn")
    assert "Direct estimate from the log_cts fit" in sv.describe(s)
    # the direct change: exp(gamma * sum_k beta^k S_k / developer-weeks) - 1 at the log_cts fit's estimate
    fit_ = causalcts.fit("log_cts ~ L(log_cts, 1) + ai_share + rollback_rate",
                         causalcts.metrics.derive(pd.read_csv(tmp_path / "rollout.csv"), ["log_cts", "rollback_rate"]),
                         entity="team", time="week", method="within", dropna=True)  # fmt: skip
    assert d["estimate"] == pytest.approx(
        sv.direct_cts_change(
            sv.exposure_sums(causalcts.metrics.derive(pd.read_csv(tmp_path / "rollout.csv"), ["log_cts"]),
                             entity="team", time="week", share="ai_share", outcome="log_cts",
                             developers="developers"),
            "log_cts", persistence=fit_.params["L1.log_cts"], effect=fit_.params["ai_share"],
            persistence_draws=np.zeros(2), effect_draws=np.zeros(2),
        )["estimate"], rel=1e-6)  # fmt: skip
    # an implied change outside the direct interval is flagged
    row = sv.compare({"estimate": -0.063}, {"estimate": 0.02, "lower": -0.01, "upper": 0.05}, "log_cts", "FE")
    assert row["verdict"] == "warn" and "outside" in row["note"]
    block = {**s, "cts_change": {"estimate": -0.063, "lower": -0.076, "upper": -0.05}, "direct": row}
    assert "WARNING" in sv.describe(block)


def test_honest_did_wording_and_target_match_the_event_study_row(monkeypatch):
    """Bug 4: M = 0 under smoothness is not exact parallel trends; the table and the note name one target."""
    from causalcts.workflows import checks

    real = checks.honest_did

    def zero_breakdown(**kw):
        hd = real(**kw)
        hd.attrs["breakdown"] = 0.0
        return hd

    monkeypatch.setattr(checks, "honest_did", zero_breakdown)
    frame = causalcts.simulate(60, 16, seed=2).data
    out = checks.rollout_design_checks(frame, outcome="cr_velocity", share="ai_share", entity="team", time="week",
                                       cluster="team", threshold=0.5, window=(4, 4), level=0.95, seed=1)  # fmt: skip
    row = next(r for r in out["rows"] if r["name"].startswith("HonestDiD"))
    assert "parallel trends (M = 0)" not in row["note"]
    assert "not significant once linear differential trends are allowed (smoothness, M = 0)" in row["note"]
    es_row = next(e for e in out["estimates"] if e["method"].startswith("event study"))
    assert es_row["term"] == "mean of e0..e3"
    assert row["note"].startswith(es_row["term"] + ":")


def test_bayesian_defaults_are_the_converging_ones():
    """Bug 13: the workflow's Bayesian defaults (4 chains x 1000 draws) give R-hat and ESS that pass."""
    from causalcts.workflows.spec import SCHEMA

    assert (SCHEMA["bayes_chains"].default, SCHEMA["bayes_draws"].default) == (4, 1000)
    spec = parse_spec({"name": "A", "data": "a.csv", "entity": "team", "time": "week", "treatment": "ai_share",
                       "outcomes": ["cr_velocity"]})[0]  # fmt: skip
    assert (spec.bayes_chains, spec.bayes_draws, spec.bayes_tune) == (4, 1000, 1000)
