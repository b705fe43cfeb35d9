"""``causalcts.fit`` attaches the exogeneity checks to every dynamic-panel result, whatever the method.

The checks are :func:`causalcts.diagnostics.check_exogeneity`'s tests, computed by the same code
(``causalcts.estimators.exogeneity``) with the fit's clusters (the entity); they never change an estimate,
they show in every rendering of the summary, and they survive the JSON round trip.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import causalcts
from causalcts import registry
from causalcts.diagnostics import check_exogeneity
from causalcts.errors import SpecificationError

F = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate"
# Bayesian fits: tiny runs (plumbing only), seeded so that the fit with and without checks is the same draw
TINY = dict(chains=1, draws=60, tune=60, seed=1)


@pytest.fixture(scope="module")
def sim():
    return causalcts.simulate(60, 8, feedback=1.0, seed=5)


def _options(name: str) -> dict:
    return TINY if registry.get(name).family == "bayes" else {}


_FITS: dict[str, tuple] = {}


def _fits(sim, name: str) -> tuple:
    if name not in _FITS:
        with pytest.warns() if registry.get(name).family == "bayes" else _nothing():  # tiny runs do not converge
            res = causalcts.fit(F, sim.data, method=name, treatment="ai_share", **_options(name))
            bare = causalcts.fit(F, sim.data, method=name, checks=False, **_options(name))
        _FITS[name] = res, bare
    return _FITS[name]


@pytest.mark.parametrize("name", registry.names())
def test_every_method_carries_the_checks_and_keeps_its_estimates(sim, name):
    res, bare = _fits(sim, name)
    pd.testing.assert_series_equal(res.params, bare.params, check_exact=True)
    pd.testing.assert_series_equal(res.std_errors, bare.std_errors, check_exact=True)
    assert "checks" not in bare.info and bare.checks.empty and bare.spec.get("checks", False) is False
    ref = check_exogeneity(F, sim.data, treatment="ai_share")  # the same tests, clustered by team as the fit
    pd.testing.assert_frame_equal(res.checks, ref, check_exact=True)
    assert res.info["checks_cluster"] == "team"
    assert res.checks.loc[["ai_share"], "verdict"].tolist() == ["fail"]  # feedback 1.0: the lead test rejects


@pytest.mark.parametrize("name", registry.names())
def test_every_methods_summary_shows_the_checks(sim, name):
    s = _fits(sim, name)[0].summary()
    for text in (str(s), s.as_html(), s.as_latex()):
        assert "Exogeneity checks" in text and "responds to treatment" in text


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def test_summary_shows_the_table_three_ways_and_json_keeps_it(sim, tmp_path):
    res = causalcts.fit(F, sim.data, method="diff-gmm", treatment="ai_share", collapse=True)
    s = res.summary()
    assert "Exogeneity checks (clustered by team; fail p < 0.05, warn p < 0.10)" in s
    assert "responds to treatment" in s and "F(1, 59)" in s
    assert "Exogeneity checks" in s.as_html() and "responds to treatment" in s.as_html()
    assert r"Exogeneity checks (clustered by team; fail p \textless{} 0.05" in s.as_latex()
    assert "diff-in-hansen" in s  # the GMM tests stay in the notes
    back = causalcts.load_results(res.to_json(tmp_path / "res.json"))
    assert back.equals(res)
    pd.testing.assert_frame_equal(back.checks, res.checks, check_exact=True)
    assert str(back.summary()) == str(s)


def test_static_models_and_checks_false_carry_none(sim):
    static = causalcts.fit("cr_velocity ~ ai_share", sim.data, method="within")
    assert static.checks.empty and "Exogeneity checks" not in static.summary()
    off = causalcts.fit(F, sim.data, method="within", checks=False)
    assert off.checks.empty and off.spec["checks"] is False
    again = causalcts.fit(**off.spec, data=sim.data)  # the spec refits without the checks
    assert again.checks.empty


def test_without_treatment_only_the_lead_tests_run(sim):
    res = causalcts.fit(F, sim.data, method="within")
    assert res.checks["test"].tolist() == ["lead", "lead"]
    assert list(res.checks.index) == ["ai_share", "rollback_rate"]


def test_bad_keywords_raise_naming_the_problem(sim):
    with pytest.raises(SpecificationError, match="checks must be True or False"):
        causalcts.fit(F, sim.data, method="within", checks="yes")
    with pytest.raises(SpecificationError, match="checks=False turns off"):
        causalcts.fit(F, sim.data, method="within", checks=False, treatment="ai_share")
    with pytest.raises(SpecificationError, match="no lag of its outcome"):
        causalcts.fit("cr_velocity ~ ai_share", sim.data, method="within", treatment="ai_share")
    with pytest.raises(SpecificationError, match="treatment='deploys' is not a regressor"):
        causalcts.fit(F, sim.data, method="within", treatment="deploys")


def test_a_check_that_cannot_be_computed_never_stops_the_fit(sim, tmp_path):
    """A team-level constant is absorbed by the team effects of the check regressions but not by pooled OLS:
    every lead regression holds it, so every lead test is a row with verdict n/a and the reason, and the
    estimate is the one without checks."""
    data = sim.data.assign(size=sim.data["team"] % 3 + 1.0)
    before = data.copy(deep=True)
    formula = F + " + size"
    res = causalcts.fit(formula, data, method="pooled")
    assert list(res.checks.index) == ["ai_share", "rollback_rate", "size"]
    assert (res.checks["verdict"] == "n/a").all() and res.checks["pvalue"].isna().all()
    assert res.checks["detail"].str.contains("not computed: The regressor 'size' is absorbed").all()
    assert "n/a" in res.summary()
    assert causalcts.load_results(res.to_json(tmp_path / "na.json")).equals(res)  # NaN rows survive JSON
    pd.testing.assert_series_equal(res.params, causalcts.fit(formula, data, method="pooled", checks=False).params)
    pd.testing.assert_frame_equal(data, before)  # the caller's frame is untouched
    with pytest.raises(Exception, match="absorbed"):  # the public check raises instead
        check_exogeneity(formula, data, treatment="ai_share")


def test_dropna_checks_use_the_fit_sample(sim):
    data = sim.data.copy()
    data.loc[data.index[::17], "rollback_rate"] = np.nan
    with pytest.warns(causalcts.errors.DataWarning):
        res = causalcts.fit(F, data, method="within", dropna=True)
    used = data.dropna(subset=["cr_velocity", "ai_share", "rollback_rate"])
    pd.testing.assert_frame_equal(res.checks, check_exogeneity(F, used, treatment="ai_share")[:2])


def test_shared_lead_design_equals_each_leads_own_regression(sim):
    """The lead tests share one design (the within transformation acts column by column); each equals the test
    from the lead's own regression up to round-off of the matrix products (1e-10 relative, far above float64
    round-off of a 360-row regression and far below any difference that would change a verdict)."""
    from causalcts.estimators.exogeneity import exogeneity_rows, lead_test

    panel = causalcts.Panel(sim.data, columns=["cr_velocity", "ai_share", "rollback_rate"])
    shared = exogeneity_rows(F, panel)
    for row, x in zip(shared, ["ai_share", "rollback_rate"], strict=True):
        own = lead_test(F, panel, panel.entity_codes, x)
        assert row["statistic"] == pytest.approx(own["statistic"], rel=1e-10)
        assert row["pvalue"] == pytest.approx(own["pvalue"], rel=1e-10)
        assert (row["variable"], row["df"], row["verdict"]) == (own["variable"], own["df"], own["verdict"])
