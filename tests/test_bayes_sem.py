"""Bayesian ML-SEM (``method="bayes"`` with ``predetermined=``): the same likelihood as ``method="ml"``, its
gradient, the results contract, the ML-SEM reference example and a feedback simulation.

The wages example is ``xtdpdml wks L.lwage, inv(ed) pre(L.union)`` on the Cornwell-Rupert data (595 people x
7 waves; tests/test_mlsem.py checks ``method="ml"`` against the published numbers).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import causalcts
from causalcts import registry
from causalcts.bayes.dynamic_sem import SemPosterior, _prior_scales
from causalcts.data.panel import Panel
from causalcts.errors import CausalCTSError, ConvergenceWarning, SpecificationError
from causalcts.estimators import mlsem
from causalcts.models import sem

DATA = Path(__file__).parent / "data" / "wages_cornwell_rupert.csv"
WAGES_FORMULA = "wks ~ L(wks, 1) + L(lwage, 1) + L(union, 1) + ed"


@pytest.fixture(scope="module")
def wages() -> pd.DataFrame:
    return pd.read_csv(DATA)


def _posterior(frame: pd.DataFrame) -> SemPosterior:
    panel = Panel(frame, entity="id", time="t", columns=["wks", "lwage", "union", "ed"])
    wide, _ = sem.build_wide(WAGES_FORMULA, panel, ["union"], False, method="bayes")
    return SemPosterior(wide, sem.missingness_patterns(wide.Z), _prior_scales(None, 1.0))


def _random_theta(post: SemPosterior, seed: int) -> np.ndarray:
    """A random point near the start values (Sigma stays positive definite), as theta."""
    x = post.to_x(sem.start_values(post.wide))
    return post.to_theta(x + 0.01 * np.random.default_rng(seed).normal(size=x.size))


# ---------------------------------------------------------------------------------------------- the likelihood
@pytest.mark.parametrize("drop", [0.0, 0.1], ids=["balanced", "missing-weeks"])
def test_log_likelihood_is_mlsem_and_the_multivariate_normal(wages, drop):
    rng = np.random.default_rng(4)
    frame = wages[rng.random(len(wages)) >= drop]
    post = _posterior(frame)
    N, Z = post.N, post.wide.Z
    for seed in range(3):
        theta = _random_theta(post, seed)
        ll = post.loglik(theta)[0]
        # method="ml"'s fit function at the same theta, turned into a log-likelihood
        f = mlsem._fun(theta, post.layout, post.patterns, N)[0]
        assert ll == pytest.approx(-0.5 * (N * f + post.n_obs_cells * np.log(2 * np.pi)), rel=1e-10)
        # and, independently, the sum of every entity's normal density of its observed columns
        Sigma, mu, _ = post.layout.moments(theta)
        direct = 0.0
        for pat in post.patterns:
            o = pat.obs
            direct += stats.multivariate_normal(mu[o], Sigma[np.ix_(o, o)]).logpdf(Z[np.ix_(pat.rows, o)]).sum()
        # the same number by two routes: round-off of sums of ~4,000 terms of size ~1
        assert ll == pytest.approx(direct, rel=1e-10)
    assert (len(post.patterns) > 1) == (drop > 0)


def test_log_posterior_gradient_matches_finite_differences(wages):
    post = _posterior(wages)
    x = post.to_x(_random_theta(post, 7))
    lp, g = post.logp(x)
    h = 1e-6
    for j in np.random.default_rng(1).choice(x.size, 40, replace=False):
        e = np.zeros_like(x)
        e[j] = h
        fd = (post.logp(x + e)[0] - post.logp(x - e)[0]) / (2 * h)
        # central differences: O(h^2) truncation plus round-off eps * |lp| / h ~ 1e-10 * 5e3 / 1e-6 = 5e-7 relative
        assert g[j] == pytest.approx(fd, rel=2e-5, abs=2e-5 * max(1.0, abs(lp) / 1e3)), j


def test_unconstrained_map_and_its_log_jacobian(wages):
    post = _posterior(wages)
    s = post.layout.slices
    x = post.to_x(_random_theta(post, 3))
    np.testing.assert_allclose(post.to_x(post.to_theta(x)), x, atol=1e-12)  # an exact inverse up to round-off

    def analytic(v):  # the log Jacobian the posterior adds, up to its constant q log 2
        return post.jac_weight @ v[s["phi"]][post.diag_pos] + v[s["psi"]].sum() + v[s["sigma2"]].sum()

    other = x + 0.3 * np.random.default_rng(2).normal(size=x.size)
    for v in (x, other):
        numeric = np.linalg.slogdet(post.jacobian(v))[1]
        assert numeric - analytic(v) == pytest.approx(post.layout.q * np.log(2), abs=1e-9)


def test_jacobian_matches_finite_differences(wages):
    # the whitening uses d theta / d x at the ML point, off-diagonal terms included (the residual-variance map)
    post = _posterior(wages)
    x = post.to_x(_random_theta(post, 5))
    J = post.jacobian(x)
    h = 1e-6
    fd = np.column_stack([(post.to_theta(x + h * e) - post.to_theta(x - h * e)) / (2 * h) for e in np.eye(x.size)])
    # central differences of smooth maps with entries of size <= 5: O(h^2) plus round-off 1e-16 * 5 / 1e-6 ~ 1e-9
    np.testing.assert_allclose(J, fd, atol=1e-7)
    s = post.layout.slices
    assert np.abs(J[s["psi"], s["ua"]]).max() > 1e-3  # the map really couples psi to the covariances


def test_prior_support_is_positive_definite_covariance(wages):
    post = _posterior(wages)
    theta = _random_theta(post, 2)
    s = post.layout.slices
    assert np.isfinite(post.log_prior(theta)[0])
    Phi = np.zeros((post.layout.q, post.layout.q))
    Phi[post.layout.tril] = theta[s["phi"]]
    Phi = Phi + np.tril(Phi, -1).T
    v = np.zeros(post.layout.q)
    v[post.layout.ua] = theta[s["ua"]]
    outside = theta.copy()
    outside[s["psi"]] = 0.999 * v @ np.linalg.solve(Phi, v)  # psi below what the regressors explain
    assert post.log_prior(outside)[0] == -np.inf


# ---------------------------------------------------------------------------------------------- plumbing
@pytest.fixture(scope="module")
def tiny_fit():
    sim = causalcts.simulate(n_teams=120, n_weeks=5, feedback=0.3, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 40 draws: too few for the checks, by design
        res = causalcts.fit(
            "cr_velocity ~ L(cr_velocity, 1) + ai_share",
            sim.data,
            method="bayes",
            predetermined=["ai_share"],
            chains=2,
            draws=40,
            tune=40,
            seed=3,
            cores=1,
        )
    return sim, res


def test_results_contract(tiny_fit):
    sim, res = tiny_fit
    names = ["L1.cr_velocity", "ai_share"]
    assert list(res.params.index) == names and res.method == "bayes" and res.cov_type == "posterior"
    post = res.idata.posterior
    assert post["beta"].dims == ("chain", "draw", "term") and list(post["beta"].coords["term"].values) == names
    assert post["error_variance"].dims == ("chain", "draw", "wave") and post.sizes["draw"] == 40
    draws = post["beta"].values.reshape(-1, 2)
    np.testing.assert_allclose(res.params, draws.mean(axis=0), rtol=1e-12)  # posterior means, nothing else
    ci = res.conf_int(0.9)
    np.testing.assert_allclose(ci["lower"], np.quantile(draws, 0.05, axis=0), rtol=1e-12)  # equal-tailed
    lr = res.long_run("ai_share")
    per_draw = draws[:, 1] / (1 - draws[:, 0])
    assert lr["estimate"] == pytest.approx(per_draw.mean(), rel=1e-12)  # draw by draw, not a ratio of means
    assert res.spec["seed"] == res.info["seed"] == 3 and res.spec["predetermined"] == ["ai_share"]
    assert res.info["predetermined"] == ["ai_share"] and {"r_hat", "ess_bulk"} <= set(res.diagnostics.columns)
    assert isinstance(res.converged, bool) and res.n_entities == 120 and res.nobs == 120 * 4
    with pytest.raises(CausalCTSError):
        _ = res.pvalues  # a posterior has none


def test_fixed_seed_reproduces_the_draws(tiny_fit):
    sim, res = tiny_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again = causalcts.fit(**res.spec, data=sim.data)
    pd.testing.assert_series_equal(again.params, res.params)  # the recorded seed reproduces the run bit for bit


def test_too_few_draws_warn():
    sim = causalcts.simulate(n_teams=80, n_weeks=4, seed=5)
    with pytest.warns(ConvergenceWarning, match="ESS"):
        causalcts.fit(
            "cr_velocity ~ L(cr_velocity, 1) + ai_share",
            sim.data,
            method="bayes",
            predetermined=["ai_share"],
            chains=1,
            draws=10,
            tune=10,
            seed=1,
        )


def test_declared_option_and_bad_input(wages):
    assert "predetermined" in registry.get("bayes").options
    kw = dict(entity="id", time="t", method="bayes", draws=5, tune=5, chains=1)
    with pytest.raises(SpecificationError, match="'south'.*not a regressor"):
        causalcts.fit(WAGES_FORMULA, wages, predetermined=["south"], **kw)
    with pytest.raises(SpecificationError, match="random_slopes"):
        causalcts.fit(WAGES_FORMULA, wages, predetermined=["union"], random_slopes=["L1.lwage"], **kw)
    with pytest.raises(CausalCTSError, match="Unknown prior"):
        causalcts.fit(WAGES_FORMULA, wages, predetermined=["union"], priors={"lkj_eta": 2.0}, **kw)


def test_strict_exogeneity_model_is_unchanged():
    # method="bayes" without predetermined= is today's model: these numbers were printed by the code before the
    # ML-SEM twin was added (same seed, same machine family); nutpie's draws are deterministic given the seed, so
    # anything beyond round-off (1e-9) means the strict-exogeneity path changed
    sim = causalcts.simulate(n_teams=60, n_weeks=8, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = causalcts.fit(
            "cr_velocity ~ L(cr_velocity, 1) + ai_share",
            sim.data,
            method="bayes",
            chains=2,
            draws=50,
            tune=50,
            seed=11,
            cores=1,
        )
    before = {
        "L1.cr_velocity": 0.5242704010823107,
        "ai_share": 0.09441417846132451,
        "initial(cr_velocity)": 0.21743599236507197,
        "mean(ai_share)": -0.03154107160713212,
        "Intercept": -0.34797299641652196,
    }
    pd.testing.assert_series_equal(r.params, pd.Series(before, name=r.params.name), check_exact=False, rtol=1e-9)
    assert "predetermined" not in r.spec


# ---------------------------------------------------------------------------------------------- reference
@pytest.mark.slow
def test_wages_posterior_means_sit_on_the_ml_estimates(wages):
    ml = causalcts.fit(WAGES_FORMULA, wages, entity="id", time="t", method="ml", predetermined=["union"])
    res = causalcts.fit(
        WAGES_FORMULA,
        wages,
        entity="id",
        time="t",
        method="bayes",
        predetermined=["union"],
        chains=2,
        draws=1000,
        tune=500,
        seed=2,
        cores=2,
        prior_scale=10.0,  # flat-ish
    )
    assert res.converged
    gap = (res.params - ml.params) / res.std_errors
    # Posterior means and the ML point differ by O(1/sqrt(N)) posterior SDs once ~150 nuisance covariances are
    # integrated out (measured: -0.19 to -0.21 for L1.wks with either prior on Phi_uu, |gap| < 0.05 for the
    # others) plus the Monte Carlo error of the mean (SD/sqrt(ESS) < 0.04 SD): 0.3 SD leaves room for both and
    # catches any real error (a wrong sign or scale of a coefficient moves it by many SDs)
    assert (gap.abs() < 0.3).all(), gap
    # posterior SDs and observed-information SEs agree to first order in 1/sqrt(N): within 15%
    ratio = res.std_errors / ml.std_errors
    assert ((ratio > 0.85) & (ratio < 1.15)).all(), ratio


# ---------------------------------------------------------------------------------------------- feedback
BETA, GAMMA = 0.5, 0.4


def _feedback_panel(n: int, waves: int, rng: np.random.Generator, burn: int = 30) -> pd.DataFrame:
    """y_it = a_i + BETA y_i,t-1 + GAMMA x_it + e_it; adoption x_it = 0.4 x_i,t-1 + 0.5 y_i,t-1 + 0.5 a_i + u_it."""
    alpha = rng.normal(size=n)
    y, x = np.zeros(n), np.zeros(n)
    rows = []
    for t in range(burn + waves):
        x = 0.4 * x + 0.5 * y + 0.5 * alpha + rng.normal(size=n)  # adoption reacts to past outcomes
        y = alpha + BETA * y + GAMMA * x + rng.normal(size=n)
        if t >= burn:
            rows.append(pd.DataFrame({"team": np.arange(n), "week": t - burn, "y": y, "x": x}))
    return pd.concat(rows, ignore_index=True)


def _feedback_fit(**extra):
    d = _feedback_panel(800, 6, np.random.default_rng(17))
    kw = dict(method="bayes", chains=2, draws=1000, tune=1000, seed=4, cores=2)
    return causalcts.fit("y ~ L(y, 1) + x", d, **(kw | extra))


@pytest.mark.slow
def test_feedback_biases_the_strict_exogeneity_model():
    """Adoption that reacts to the outcome violates strict exogeneity: gamma lands more than 4 posterior SDs away."""
    strict = _feedback_fit()
    assert strict.converged
    z = abs(strict.params["x"] - GAMMA) / strict.std_errors["x"]
    assert z > 4, (strict.params, strict.std_errors)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="known open problem (0.2): NUTS on the predetermined model still diverges on this design (25 and 47 "
    "divergences in two runs that differ only by round-off, team-effect variance bulk ESS 76 to 144 at 800 x 6; "
    "491 divergences before the residual-variance coordinates) although its posterior means sit near the truth; "
    "strict, so a fix turns it red",
)
def test_the_predetermined_model_recovers_the_truth_under_feedback():
    with warnings.catch_warnings():
        # the convergence failure is asserted below (an AssertionError, the one the xfail expects)
        warnings.simplefilter("ignore", ConvergenceWarning)
        pre = _feedback_fit(predetermined=["x"], tune=300)
    assert pre.converged, pre.diagnostics
    truth = pd.Series({"L1.y": BETA, "x": GAMMA})
    # the predetermined model is the true one: each coefficient within 3.5 posterior SDs (two-sided 0.05%)
    assert ((pre.params - truth).abs() < 3.5 * pre.std_errors).all(), (pre.params, pre.std_errors)
