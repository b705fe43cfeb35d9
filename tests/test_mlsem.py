"""ML-SEM dynamic panel with fixed effects (``method="ml"``): published xtdpdml output, a known-truth
simulation with feedback, the analytic gradient, full-information ML on unbalanced panels, and bad input.

Reference numbers: ``xtdpdml wks L.lwage, inv(ed) pre(L.union) errorinv`` on the Cornwell-Rupert wages data
(595 people x 7 waves), as printed in the R package dpm's README (the Socius article example; the same numbers
appear in a public Stata run of xtdpdml), quoted in ``shared/reference/REFERENCE.md`` and
``tests/data/README.md``. Each printed number is matched to half a unit of its last printed digit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import causalcts
from causalcts import registry
from causalcts.data.panel import Panel
from causalcts.errors import CausalCTSError, SpecificationError, TooFewPeriodsError
from causalcts.estimators import mlsem

DATA = Path(__file__).parent / "data" / "wages_cornwell_rupert.csv"
WAGES_FORMULA = "wks ~ L(wks, 1) + L(lwage, 1) + L(union, 1) + ed"


@pytest.fixture(scope="module")
def wages() -> pd.DataFrame:
    return pd.read_csv(DATA)


@pytest.fixture(scope="module")
def wages_fit(wages):
    return causalcts.fit(
        WAGES_FORMULA, wages, entity="id", time="t", method="ml", predetermined=["union"], error_inv=True
    )


def _half_unit(printed: str) -> float:
    """Half a unit of the last printed digit of ``printed`` ("0.020" -> 0.0005, "36.37" -> 0.005)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return 0.5 * 10.0**-decimals


# ---------------------------------------------------------------------------------------------- xtdpdml
# (term, coefficient, SE, z) as printed by xtdpdml / dpm for the Socius article example
PUBLISHED = [
    ("L1.wks", "0.188", "0.020", "9.586"),
    ("L1.lwage", "0.588", "0.488", "1.204"),
    ("L1.union", "-1.206", "0.522", "-2.309"),
    ("ed", "-0.107", "0.056", "-1.893"),
]


@pytest.mark.parametrize(("term", "coef", "se", "z"), PUBLISHED)
def test_xtdpdml_coefficients_standard_errors_and_z(wages_fit, term, coef, se, z):
    r = wages_fit
    assert abs(r.params[term] - float(coef)) <= _half_unit(coef)
    assert abs(r.std_errors[term] - float(se)) <= _half_unit(se)
    assert abs(r.tstats[term] - float(z)) <= _half_unit(z)


def test_xtdpdml_wave_two_constant_and_saturated_test(wages_fit):
    r = wages_fit
    # constant of the wave-2 equation, 36.37 (2.893) (REFERENCE.md, xtdpdml output)
    assert abs(r.info["intercepts"]["2"] - 36.37) <= _half_unit("36.37")
    assert abs(r.info["intercept_std_errors"]["2"] - 2.893) <= _half_unit("2.893")
    # chi-square against the saturated model 138.476 with 76 df; RMSEA 0.037 [0.027, 0.047] (dpm README)
    lr = r.tests["saturated_lr"]
    assert lr["df"] == 76
    assert abs(lr["statistic"] - 138.476) <= _half_unit("138.476")
    for key, printed in (("rmsea", "0.037"), ("rmsea_lower", "0.027"), ("rmsea_upper", "0.047")):
        assert abs(lr[key] - float(printed)) <= _half_unit(printed), key
    assert 0 < lr["pvalue"] < 1e-3  # 138.5 on 76 df is far in the tail
    assert r.n_entities == 595 and r.nobs == 595 * 6
    assert r.info["converged"] and r.info["time_invariant"] == ["ed"] and r.info["predetermined"] == ["union"]


def test_term_name_and_variable_name_declare_the_same_predetermined_regressor(wages, wages_fit):
    again = causalcts.fit(
        WAGES_FORMULA, wages, entity="id", time="t", method="ml", predetermined=["L1.union"], error_inv=True
    )
    # same model, same optimum: differences are the optimiser's convergence tolerance
    np.testing.assert_allclose(again.params, wages_fit.params, rtol=1e-6)


def test_long_run_effect_and_refit_from_spec(wages, wages_fit):
    r = wages_fit
    assert r.outcome_lags == ("L1.wks",)
    lr = r.long_run("union")
    expected = r.params["L1.union"] / (1 - r.params["L1.wks"])
    assert lr["estimate"] == pytest.approx(expected, rel=1e-12)  # the same arithmetic
    assert lr["std_error"] > 0
    again = causalcts.fit(**r.spec, data=wages)
    pd.testing.assert_series_equal(again.params, r.params)  # deterministic optimiser and start values


def test_free_error_variances_fit_better_and_cost_five_df(wages, wages_fit):
    free = causalcts.fit(WAGES_FORMULA, wages, entity="id", time="t", method="ml", predetermined=["union"])
    a, b = wages_fit.tests["saturated_lr"], free.tests["saturated_lr"]
    assert a["df"] - b["df"] == 5  # six error variances instead of one
    assert b["statistic"] < a["statistic"]  # nested models: the larger one fits at least as well
    assert len(free.info["error_variances"]) == 6 and len(wages_fit.info["error_variances"]) == 1


def test_robust_standard_errors_differ_but_estimates_do_not(wages, wages_fit):
    rob = causalcts.fit(
        WAGES_FORMULA,
        wages,
        entity="id",
        time="t",
        method="ml",
        predetermined=["union"],
        error_inv=True,
        cov="robust",
    )
    pd.testing.assert_series_equal(rob.params, wages_fit.params)
    assert (rob.std_errors > 0).all()
    # weeks worked is far from normal (a spike at 52): the sandwich must differ from the observed information
    assert not np.allclose(rob.std_errors, wages_fit.std_errors, rtol=0.05)
    assert rob.cov_type.startswith("robust")


def test_caller_data_is_not_modified(wages):
    before = wages.copy()
    causalcts.fit(WAGES_FORMULA, wages, entity="id", time="t", method="ml", predetermined=["union"], error_inv=True)
    pd.testing.assert_frame_equal(wages, before)


# ---------------------------------------------------------------------------------------------- known truth
BETA, GAMMA = 0.5, 0.4


def _simulate(n: int, waves: int, rng: np.random.Generator, burn: int = 30) -> pd.DataFrame:
    """y_it = alpha_i + BETA y_i,t-1 + GAMMA x_it + e_it; x_it = 0.4 x_i,t-1 + 0.3 y_i,t-1 + 0.5 alpha_i + u_it.

    x feeds back on past y, so it is predetermined (not strictly exogenous) and correlated with alpha.
    """
    alpha = rng.normal(size=n)
    y = np.zeros(n)
    x = np.zeros(n)
    rows = []
    for t in range(burn + waves):
        x = 0.4 * x + 0.3 * y + 0.5 * alpha + rng.normal(size=n)
        y = alpha + BETA * y + GAMMA * x + rng.normal(size=n)
        if t >= burn:
            rows.append(pd.DataFrame({"team": np.arange(n), "week": t - burn, "y": y, "x": x}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def replications():
    rng = np.random.default_rng(20240901)
    out = []
    for _ in range(12):
        d = _simulate(300, 5, rng)
        r = causalcts.fit("y ~ L(y, 1) + x", d, method="ml", predetermined=["x"])
        out.append((r.params.to_numpy(), r.std_errors.to_numpy()))
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


def test_simulation_with_feedback_recovers_beta_and_gamma(replications):
    est, se = replications
    mc_se = est.std(axis=0, ddof=1) / np.sqrt(len(est))
    truth = np.array([BETA, GAMMA])
    # the ML-SEM is consistent here; 3 Monte Carlo standard errors leave a 0.3% chance of a false alarm
    assert np.all(np.abs(est.mean(axis=0) - truth) <= 3 * mc_se), (est.mean(axis=0), mc_se)
    # observed-information SEs estimate the sampling spread: with 12 replications the sample SD is within about
    # +-40% of the truth (chi-square with 11 df, 99% interval), so a ratio outside [0.6, 1.6] is a real error
    ratio = se.mean(axis=0) / est.std(axis=0, ddof=1)
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio


def test_feedback_ignored_is_rejected_by_the_saturated_test():
    # x declared strictly exogenous although y feeds back on it: the LR test against the saturated model sees it
    d = _simulate(1500, 5, np.random.default_rng(7))
    wrong = causalcts.fit("y ~ L(y, 1) + x", d, method="ml")
    right = causalcts.fit("y ~ L(y, 1) + x", d, method="ml", predetermined=["x"])
    assert wrong.tests["saturated_lr"]["pvalue"] < 1e-6
    assert right.tests["saturated_lr"]["pvalue"] > 1e-3  # a true model: rejected with probability 0.001
    # and the strictly exogenous fit is biased: gamma more than 4 of its SEs away from the truth
    assert abs(wrong.params["x"] - GAMMA) > 4 * wrong.std_errors["x"]


def test_rescaling_a_regressor_rescales_its_coefficient_only():
    d = _simulate(400, 5, np.random.default_rng(3))
    a = causalcts.fit("y ~ L(y, 1) + x", d, method="ml", predetermined=["x"])
    b = causalcts.fit("y ~ L(y, 1) + x", d.assign(x=10 * d["x"] + 3), method="ml", predetermined=["x"])
    # the model is closed under affine changes of x; the two optima agree to the optimiser's tolerance
    assert b.params["x"] == pytest.approx(a.params["x"] / 10, rel=1e-6)
    assert b.std_errors["x"] == pytest.approx(a.std_errors["x"] / 10, rel=1e-4)
    assert b.params["L1.y"] == pytest.approx(a.params["L1.y"], rel=1e-6)
    assert b.tests["saturated_lr"]["statistic"] == pytest.approx(a.tests["saturated_lr"]["statistic"], rel=1e-6)


# ---------------------------------------------------------------------------------------------- unbalanced panels
def test_unbalanced_panel_by_full_information_ml():
    rng = np.random.default_rng(11)
    d = _simulate(1000, 5, rng)
    drop = rng.random(len(d)) < 0.1  # missing completely at random
    r = causalcts.fit("y ~ L(y, 1) + x", d[~drop], method="ml", predetermined=["x"])
    assert r.info["missing_patterns"] > 1
    assert r.nobs < 1000 * 4
    truth = pd.Series({"L1.y": BETA, "x": GAMMA})
    # FIML is consistent under MCAR: each estimate within 3.5 of its SEs of the truth (two-sided 0.05%)
    assert (np.abs(r.params - truth) <= 3.5 * r.std_errors).all(), (r.params, r.std_errors)
    lr = r.tests["saturated_lr"]
    assert lr["statistic"] > 0 and lr["df"] > 0 and lr["pvalue"] > 1e-3  # a true model


def test_saturated_em_matches_the_sample_moments_on_complete_data():
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4))
    pats = mlsem._patterns(Z)
    closed = mlsem._saturated(Z, pats, 200)
    # force the EM path: a second, empty-handed pattern changes nothing in the likelihood
    em = mlsem._saturated(
        Z, [*pats, mlsem._Pattern(np.array([0]), 0, np.zeros(1), np.zeros((1, 1)), np.array([], int))], 200
    )
    assert em == pytest.approx(closed, abs=1e-9)  # EM's fixed point is the sample mean and covariance


# ---------------------------------------------------------------------------------------------- internals
def test_analytic_gradient_matches_finite_differences(wages):
    panel = Panel(wages, entity="id", time="t", columns=["wks", "lwage", "union", "ed"])
    wide, _ = mlsem._build(WAGES_FORMULA, panel, ["union"], False)
    pats = mlsem._patterns(wide.Z)
    theta = mlsem._start(wide)
    theta = theta + 0.01 * np.random.default_rng(0).normal(size=theta.size)
    f, g = mlsem._fun(theta, wide.layout, pats, wide.Z.shape[0])
    h = 1e-6
    for j in np.random.default_rng(1).choice(theta.size, 25, replace=False):
        e = np.zeros_like(theta)
        e[j] = h
        fd = (mlsem._fun(theta + e, wide.layout, pats, 595)[0] - mlsem._fun(theta - e, wide.layout, pats, 595)[0]) / (
            2 * h
        )
        # central differences are accurate to O(h^2) plus round-off eps * f / h ~ 1e-9
        assert g[j] == pytest.approx(fd, abs=1e-6, rel=1e-5), j


def test_registered_in_the_method_registry():
    m = registry.get("ml")
    assert m.family == "likelihood"
    assert set(m.options) == {"predetermined", "cov", "error_inv"}


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_predetermined_names_are_named(wages):
    kw = dict(entity="id", time="t", method="ml")
    with pytest.raises(SpecificationError, match="'south'.*not a regressor"):
        causalcts.fit(WAGES_FORMULA, wages, predetermined=["south"], **kw)
    with pytest.raises(SpecificationError, match="outcome 'wks'"):
        causalcts.fit(WAGES_FORMULA, wages, predetermined=["wks"], **kw)
    with pytest.raises(SpecificationError, match="'ed'.*time-invariant"):
        causalcts.fit(WAGES_FORMULA, wages, predetermined=["ed"], **kw)
    with pytest.raises(SpecificationError, match="cov='oim'"):
        causalcts.fit(WAGES_FORMULA, wages, cov="oim", **kw)
    with pytest.raises(SpecificationError, match="one intercept per wave"):
        causalcts.fit(WAGES_FORMULA, wages, time_effects=False, **kw)


def test_too_few_periods_for_the_lags(wages):
    short = wages[wages["t"] <= 3]
    with pytest.raises(TooFewPeriodsError, match=r"(?i)lags up to 3 need at least 5 periods"):
        causalcts.fit("wks ~ L(wks, 1) + L(lwage, 3)", short, entity="id", time="t", method="ml")
    with pytest.raises(CausalCTSError, match="lwage"):  # a regressor that is constant at every wave
        causalcts.fit("wks ~ L(wks, 1) + lwage", short.assign(lwage=1.0), entity="id", time="t", method="ml")
