"""The concentrated ML-SEM likelihood (``causalcts.models.sem.Profile``): exact, and the same fit as the general path.

On complete data without time-invariant regressors, ``method="ml"`` maximises the likelihood concentrated in
closed form on the coefficients and error variances. These tests check the algebra (the closed form equals the
full fit function at the reconstructed parameters, which are a stationary point in everything concentrated out)
and that the fit, its standard errors (observed information and sandwich) and the test against the saturated
model equal the general path's, which optimises all parameters jointly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import causalcts
from causalcts.data.panel import Panel
from causalcts.estimators import mlsem
from causalcts.models import sem

FORMULA = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate + interventions_per_deploy"
COLUMNS = ["cr_velocity", "ai_share", "rollback_rate", "interventions_per_deploy"]


@pytest.fixture(scope="module")
def small():
    return causalcts.simulate(150, 7, seed=4, feedback=1.0).data


def _profile(data, formula=FORMULA, predetermined=("ai_share",), error_inv=False):
    panel = Panel(data, entity="team", time="week", columns=COLUMNS)
    wide, _ = sem.build_wide(formula, panel, list(predetermined), error_inv)
    patterns = sem.missingness_patterns(wide.Z)
    return wide, patterns, sem.profile_layout(wide, patterns)


def test_concentrated_likelihood_is_the_full_likelihood_at_its_stationary_point(small):
    wide, patterns, prof = _profile(small)
    L, N = wide.layout, wide.Z.shape[0]
    rng = np.random.default_rng(0)
    phi = prof.start(sem.start_values(wide)) + 0.05 * rng.normal(size=prof.n_profile)  # away from the optimum
    f_p, pieces = prof.value(phi)
    theta = prof.theta(phi, pieces)
    f, g = sem.objective(theta, L, patterns, N)
    # the same number computed two ways: only round-off separates them
    assert f_p == pytest.approx(f, abs=1e-10)
    profiled = np.zeros(L.n_params, dtype=bool)
    profiled[L.slices["coef"]] = profiled[L.slices["sigma2"]] = True
    # every concentrated parameter is at its exact (closed-form) optimum: zero gradient up to round-off,
    # whereas the profiled ones are not (the point was moved away from the optimum)
    assert np.max(np.abs(g[~profiled])) < 1e-10
    assert np.max(np.abs(g[profiled])) > 1e-3
    # so the full gradient in (coefficients, log variances) is the profile's gradient (envelope theorem):
    # central differences with h = 1e-6 are accurate to about eps * F / h ~ 1e-9
    env = np.concatenate([g[L.slices["coef"]], g[L.slices["sigma2"]] * np.exp(phi[L.n_coef :])])
    for j in range(prof.n_profile):
        e = np.zeros_like(phi)
        e[j] = 1e-6
        fd = (prof.value(phi + e)[0] - prof.value(phi - e)[0]) / 2e-6
        assert env[j] == pytest.approx(fd, abs=1e-7), j


def _general(monkeypatch):
    monkeypatch.setattr(mlsem, "profile_layout", lambda wide, patterns: None)


CASES = {
    "controls": dict(formula=FORMULA, predetermined=["ai_share"]),
    "error_inv": dict(formula=FORMULA, predetermined=["ai_share"], error_inv=True),
    "two predetermined": dict(formula=FORMULA, predetermined=["ai_share", "rollback_rate"]),
    "lagged predetermined": dict(
        formula="cr_velocity ~ L(cr_velocity, 1) + L(ai_share, 1) + rollback_rate", predetermined=["L1.ai_share"]
    ),
    "none predetermined": dict(formula=FORMULA, predetermined=None),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cov", ["unadjusted", "robust"])
def test_concentrated_and_general_paths_give_the_same_fit(small, monkeypatch, case, cov):
    kw = dict(CASES[case])
    formula = kw.pop("formula")
    fast = causalcts.fit(formula, small, method="ml", cov=cov, **kw)
    _general(monkeypatch)
    slow = causalcts.fit(formula, small, method="ml", cov=cov, **kw)
    assert fast.info["concentrated"] and not slow.info["concentrated"]
    assert fast.info["converged"] and slow.info["converged"]
    # one maximum: both paths stop with gradients below 1e-8, so estimates agree to about 1e-7 relative
    assert np.allclose(fast.params, slow.params, rtol=1e-6, atol=1e-8)
    assert fast.info["loglik"] == pytest.approx(slow.info["loglik"], rel=1e-10)
    assert fast.tests["saturated_lr"]["statistic"] == pytest.approx(slow.tests["saturated_lr"]["statistic"], rel=1e-6)
    assert fast.tests["saturated_lr"]["df"] == slow.tests["saturated_lr"]["df"]
    # standard errors from two finite-difference Hessians (steps 1e-5: errors about 1e-6 relative)
    assert np.allclose(fast.std_errors, slow.std_errors, rtol=1e-4)
    se_fast = pd.Series(fast.info["intercept_std_errors"])
    se_slow = pd.Series(slow.info["intercept_std_errors"])
    assert np.allclose(se_fast, se_slow, rtol=1e-4)
    assert fast.info["alpha_variance"] == pytest.approx(slow.info["alpha_variance"], rel=1e-6)
    assert np.allclose(fast.info["error_variances"], slow.info["error_variances"], rtol=1e-6)


def test_general_path_where_the_closed_form_does_not_apply(small):
    # missing rows: the strictly exogenous block is no longer observed for every entity
    gappy = small.drop(index=small.sample(frac=0.05, random_state=1).index)
    _, patterns, prof = _profile(gappy)
    assert len(patterns) > 1 and prof is None
    # a time-invariant regressor: its covariance with the fixed effect is fixed at zero
    inv = small.assign(size=small.groupby("team")["developers"].transform("first"))
    panel = Panel(inv, entity="team", time="week", columns=[*COLUMNS, "size"])
    wide, _ = sem.build_wide(FORMULA + " + size", panel, ["ai_share"], False)
    assert wide.invariant == ["size"]
    assert sem.profile_layout(wide, sem.missingness_patterns(wide.Z)) is None
    assert not causalcts.fit(FORMULA, gappy, method="ml", predetermined=["ai_share"]).info["concentrated"]


def test_long_panel_with_controls_converges():
    # issue 11: 120 teams x 30 weeks with two controls stopped abnormally after minutes on the general path
    data = causalcts.simulate(120, 30, seed=1, feedback=1.0).data
    r = causalcts.fit(FORMULA, data, method="ml", predetermined=["ai_share"])
    assert r.info["concentrated"] and r.info["converged"]
    assert r.info["max_abs_gradient"] < 1e-8  # the full model's gradient at the reconstructed parameters
