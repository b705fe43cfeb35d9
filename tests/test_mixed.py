"""Mixed models: lme4 reference values, equivalences of the integrated likelihood, NUTS plumbing.

Reference values (shared/reference/REFERENCE.md):

* sleepstudy, ``summary(lmer(Reaction ~ Days + (Days | Subject), sleepstudy))`` in lme4 (REML), as
  printed on lme4's reference page: (Intercept) 251.405 (SE 6.825), Days 10.467 (SE 1.546); SD of
  Subject intercepts 24.741, of slopes 5.922, correlation 0.066 (printed 0.07); residual SD 25.592;
  REML criterion at convergence 1743.628.
* dietox, ``lmer(Weight ~ Time + (1 | Pig), dietox)`` (REML), lme4 output embedded in the statsmodels
  MixedLM example notebook: (Intercept) 15.72352 (SE 0.78805), Time 6.94251 (SE 0.03339); Pig
  intercept variance 40.39; residual variance 11.37; REML criterion 4809.6.

Tolerances are half a unit in the last printed digit, except the random-effect SDs: the REML
criterion is so flat in them that two optimisers stopping at criteria equal to 1e-9 (ours; lme4's
bobyqa) differ by up to 2e-4 in an SD (ours: 24.74045); the SDs are held to 1e-3 (two units of the
last printed digit) for that reason, while the criterion itself is matched to its printed digits.
* Orthodont (nlme), ``lme(distance ~ age, Orthodont, random = ~ age | Subject)`` (REML), the values
  nlme's own test suite checks (cran/nlme, ``tests/lme.R``, "Intervals failed in a patch proposal",
  R-devel 2016-01-11, 64-bit, ``dput(signif(., 8))``): fixed effects 16.761111 and 0.66018519, their
  standard errors 0.77524603 and 0.071253264; SD of Subject intercepts 2.3270341, of age slopes
  0.22642779, correlation -0.60933286; residual SD 1.3100397. ``summary()`` prints the restricted
  log-likelihood -221.3183 (lme4's ``lmer(distance ~ age + (age | Subject), Orthodont)`` REML
  criterion is -2 times that, 442.6).
"""

import importlib
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import causalcts
from causalcts import datasets
from causalcts.bayes.fastlogp import IntegratedPosterior
from causalcts.bayes.integrated import (
    NormalPrior,
    conditional_modes,
    group_stats,
    integrated_loglik,
    log_posterior,
    profiled_deviance,
)
from causalcts.bayes.mixed import InternalScale, build_pymc_model, default_prior_scales, prepare_mixed
from causalcts.errors import (
    CausalCTSError,
    ConvergenceWarning,
    MissingColumnError,
    MissingValueError,
    SpecificationError,
)

SLEEP = datasets.load("sleepstudy")
DIETOX = datasets.load("dietox")
ORTHO = datasets.load("orthodont")
ORTHO_FORMULA = "distance ~ age + (1 + age | Subject)"


@pytest.fixture(scope="module")
def sleep_reml():
    return causalcts.mixed("Reaction ~ Days + (Days | Subject)", SLEEP, method="reml")


def test_sleepstudy_reml_matches_lme4(sleep_reml):
    r = sleep_reml
    assert r.params["Intercept"] == pytest.approx(251.405, abs=5e-4)
    assert r.params["Days"] == pytest.approx(10.467, abs=5e-4)
    assert r.std_errors["Intercept"] == pytest.approx(6.825, abs=5e-4)
    assert r.std_errors["Days"] == pytest.approx(1.546, abs=5e-4)
    sd = np.sqrt(np.diag(r.cov_re))
    assert sd[0] == pytest.approx(24.741, abs=1e-3)
    assert sd[1] == pytest.approx(5.922, abs=1e-3)
    assert r.cov_re.iloc[0, 1] / (sd[0] * sd[1]) == pytest.approx(0.066, abs=5e-4)
    assert np.sqrt(r.scale) == pytest.approx(25.592, abs=5e-4)
    assert -2 * r.llf == pytest.approx(1743.628, abs=5e-4)
    assert list(r.cov_re.index) == ["Intercept", "Days"]


def test_dietox_reml_matches_lme4():
    r = causalcts.mixed("Weight ~ Time + (1 | Pig)", DIETOX, method="reml")
    assert r.params["Intercept"] == pytest.approx(15.72352, abs=5e-6)
    assert r.params["Time"] == pytest.approx(6.94251, abs=5e-6)
    assert r.std_errors["Intercept"] == pytest.approx(0.78805, abs=5e-6)
    assert r.std_errors["Time"] == pytest.approx(0.03339, abs=5e-6)
    assert r.cov_re.iloc[0, 0] == pytest.approx(40.39, abs=5e-3)
    assert r.scale == pytest.approx(11.37, abs=5e-3)
    assert -2 * r.llf == pytest.approx(4809.6, abs=0.05)


@pytest.mark.parametrize("reml", [True, False])
def test_agrees_with_statsmodels_mixedlm(reml):
    """Two routes to the same maximum: our integrated likelihood and statsmodels MixedLM (dense)."""
    smf = importlib.import_module("statsmodels.formula.api")
    ref = smf.mixedlm("Reaction ~ Days", SLEEP, groups=SLEEP["Subject"], re_formula="~Days").fit(
        reml=reml, method="lbfgs"
    )
    ours = causalcts.mixed("Reaction ~ Days + (Days | Subject)", SLEEP, method="reml" if reml else "ml")
    assert ours.llf == pytest.approx(ref.llf, abs=1e-4)  # both optimisers stop within 1e-6 of the optimum
    np.testing.assert_allclose(ours.params.to_numpy(), ref.fe_params.to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(ours.cov_re.to_numpy(), ref.cov_re.to_numpy(), rtol=1e-3)
    assert ours.scale == pytest.approx(ref.scale, rel=1e-4)


def _posterior(formula, data=SLEEP, compiled=True):
    spec, y, X, Z, codes, labels = prepare_mixed(formula, data)
    st = group_stats(y, X, Z, codes)
    pri = default_prior_scales(y, X, Z, spec, {}, 1.0)
    post = IntegratedPosterior(
        st,
        spec.correlated,
        pri["beta_mu"],
        pri["beta_sd"],
        pri["sigma_sd"],
        pri["re_sd"],
        pri["lkj_eta"],
        compiled=compiled,
    )
    return post, spec, y, X, Z, codes


@pytest.mark.parametrize(
    "formula",
    ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days || Subject)"],
)
def test_integrated_likelihood_equals_dense_marginal(formula):
    """Sufficient statistics give exactly the dense multivariate normal marginal likelihood."""
    post, spec, y, X, Z, codes = _posterior(formula)
    x = post.initial_point(3)
    x[: post.p] = [240.0, 11.0]
    beta, v, u, z = post.unpack(x)
    sd = np.exp(u)
    Sig = np.diag(sd**2)
    if post.has_rho:
        Sig[0, 1] = Sig[1, 0] = np.tanh(z) * sd[0] * sd[1]
    dense = sum(
        stats.multivariate_normal(
            X[codes == g] @ beta, Z[codes == g] @ Sig @ Z[codes == g].T + np.exp(2 * v) * np.eye((codes == g).sum())
        ).logpdf(y[codes == g])
        for g in range(codes.max() + 1)
    )
    assert post.loglik(x) == pytest.approx(dense, abs=1e-8)


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"])
@pytest.mark.parametrize("compiled", [True, False])
def test_gradient_matches_finite_differences(formula, compiled):
    post, *_ = _posterior(formula, compiled=compiled)
    x = post.initial_point(5)
    _, g = post.logp(x)
    h = 1e-5
    num = np.array([(post.logp(x + h * e)[0] - post.logp(x - h * e)[0]) / (2 * h) for e in np.eye(len(x))])
    # central differences carry O(h^2) truncation and O(eps/h) rounding: 1e-5 relative is ample
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_nuts_plumbing_flags_trouble_with_tiny_runs():
    """A deliberately tiny run must raise ConvergenceWarning and set converged=False, not hide it."""
    with pytest.warns(ConvergenceWarning, match="ESS"):
        r = causalcts.mixed(
            "Reaction ~ Days + (Days | Subject)",
            SLEEP,
            method="nuts",
            chains=2,
            draws=30,
            tune=30,
            seed=3,
            team_effect_draws=5,
        )
    assert r.converged is False
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(r.diagnostics.columns)
    post = r.idata.posterior
    assert list(post["beta"].coords["term"].values) == ["Intercept", "Days"]
    assert post["beta"].dims == ("chain", "draw", "term")
    te = r.idata["team_effects"]["team_effect"]
    assert te.dims == ("chain", "draw", "Subject", "re_term") and te.shape[2] == 18
    ci = r.conf_int(0.9)
    assert (ci["lower"] < ci["upper"]).all()
    assert "Converged: False" in r.summary()


def test_nuts_is_reproducible_with_a_seed():
    kw = dict(method="nuts", chains=2, draws=20, tune=20, seed=11, team_effect_draws=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = causalcts.mixed("Reaction ~ Days + (1 | Subject)", SLEEP, **kw)
        b = causalcts.mixed("Reaction ~ Days + (1 | Subject)", SLEEP, **kw)
    np.testing.assert_array_equal(a.idata.posterior["beta"].values, b.idata.posterior["beta"].values)
    np.testing.assert_array_equal(
        a.idata["team_effects"]["team_effect"].values, b.idata["team_effects"]["team_effect"].values
    )


def test_idata_saves_to_netcdf(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = causalcts.mixed(
            "Reaction ~ Days + (1 | Subject)", SLEEP, chains=1, draws=10, tune=10, seed=1, team_effect_draws=2
        )
    path = r.idata.to_netcdf(str(tmp_path / "fit.nc"))
    import arviz as az

    back = az.from_netcdf(path)
    np.testing.assert_array_equal(back.posterior["beta"].values, r.idata.posterior["beta"].values)


@pytest.mark.slow
def test_sleepstudy_posterior_means_near_reml(sleep_reml):
    """With default weakly informative priors the posterior means lie within a quarter posterior SD of REML."""
    b = causalcts.mixed("Reaction ~ Days + (Days | Subject)", SLEEP, method="nuts", seed=1)
    assert b.converged
    z = (b.params - sleep_reml.params) / b.std_errors
    assert (z.abs() < 0.25).all()


@pytest.mark.parametrize(
    "formula,exc,match",
    [
        ("Reaction ~ Days", SpecificationError, "random-effects"),
        ("Reaction ~ Days + (1 | Subject) + (1 | Days)", SpecificationError, "One grouping factor"),
        ("Reaction ~ Hours + (1 | Subject)", MissingColumnError, "Hours"),
        ("Reaction ~ log(Days) + (1 | Subject)", SpecificationError, "log"),
    ],
)
def test_bad_formulas(formula, exc, match):
    with pytest.raises(exc, match=match):
        causalcts.mixed(formula, SLEEP, method="reml")


def test_bad_data_and_options():
    bad = SLEEP.copy()
    bad.loc[4, "Days"] = np.nan
    with pytest.raises(MissingValueError, match="'Days'.*row 4"):
        causalcts.mixed("Reaction ~ Days + (1 | Subject)", bad, method="reml")
    with pytest.raises(CausalCTSError, match="'reml'"):
        causalcts.mixed("Reaction ~ Days + (1 | Subject)", SLEEP, method="REML")
    with pytest.raises(CausalCTSError, match="Unknown prior"):
        causalcts.mixed("Reaction ~ Days + (1 | Subject)", SLEEP, priors={"beta": 1})
    one = SLEEP[SLEEP["Subject"] == SLEEP["Subject"].iloc[0]]
    with pytest.raises(CausalCTSError, match="at least 2"):
        causalcts.mixed("Reaction ~ Days + (1 | Subject)", one, method="reml")
    before = SLEEP.copy()
    causalcts.mixed("Reaction ~ Days + (1 | Subject)", SLEEP, method="ml")
    pd.testing.assert_frame_equal(SLEEP, before)


def test_uncorrelated_syntax_fixes_correlation_at_zero():
    r = causalcts.mixed("Reaction ~ Days + (Days || Subject)", SLEEP, method="reml")
    assert r.cov_re.iloc[0, 1] == 0.0
    assert r.llf < causalcts.mixed("Reaction ~ Days + (Days | Subject)", SLEEP, method="reml").llf + 1e-9


# ---------------------------------------------------------------------------------------------------------------
# Orthodont: shipped data, REML against nlme, posterior against REML


def test_orthodont_is_nlmes_data():
    assert ORTHO.shape == (108, 4)
    assert list(ORTHO.columns) == ["distance", "age", "Subject", "Sex"]
    assert ORTHO["Subject"].nunique() == 27 and sorted(ORTHO["age"].unique()) == [8, 10, 12, 14]
    assert ORTHO.groupby("Sex")["Subject"].nunique().to_dict() == {"Female": 11, "Male": 16}
    # first rows of nlme's Orthodont (subject M01: 26, 25, 29, 31 mm)
    assert ORTHO.loc[ORTHO["Subject"] == "M01", "distance"].tolist() == [26.0, 25.0, 29.0, 31.0]


def test_orthodont_reml_matches_nlme():
    """REML against nlme's own test values (module docstring). The fixed effects (a GLS solution, insensitive to
    the flat optimum) match to their 8 significant digits; the standard errors and random-effect parameters
    depend on the variance parameters, where the REML criterion is flat: at nlme's estimates our criterion is
    3e-12 above our optimum, and the two R builds nlme records differ by 2e-7 in the intercept SD. They are held
    to 2e-6 relative (1e-5 for the correlation's absolute value), ten times that spread."""
    r = causalcts.mixed(ORTHO_FORMULA, ORTHO, method="reml")
    assert r.params["Intercept"] == pytest.approx(16.761111, abs=5e-7)
    assert r.params["age"] == pytest.approx(0.66018519, abs=5e-9)
    assert r.std_errors["Intercept"] == pytest.approx(0.77524603, rel=2e-6)
    assert r.std_errors["age"] == pytest.approx(0.071253264, rel=2e-6)
    sd = np.sqrt(np.diag(r.cov_re))
    assert sd[0] == pytest.approx(2.3270341, rel=2e-6)
    assert sd[1] == pytest.approx(0.22642779, rel=2e-6)
    assert r.cov_re.iloc[0, 1] / (sd[0] * sd[1]) == pytest.approx(-0.60933286, abs=1e-5)
    assert np.sqrt(r.scale) == pytest.approx(1.3100397, rel=2e-6)
    assert r.llf == pytest.approx(-221.3183, abs=5e-5)  # printed to 4 decimals


def test_orthodont_posterior_medians_near_reml():
    """Default priors must not distort a small data set: the posterior medians of both random-effect variances
    and of their correlation lie within half a posterior SD of REML (nlme, above). Why half an SD: with the
    previous defaults (intercept at age 0, HalfNormal(s_y) SDs, LKJ(2)) the three medians sat 0.9 to 1.2 posterior
    SDs from REML (intercept variance 2.2 against 5.4, correlation -0.11 against -0.61); the Monte Carlo error of
    a median at a bulk ESS above 800 is about 1.25 / sqrt(800) = 0.05 SD, and the gap between a posterior median
    and the REML mode of a skewed variance under flat priors is about 0.1 to 0.2 SD with 27 subjects."""
    b = causalcts.mixed(ORTHO_FORMULA, ORTHO, method="nuts", chains=4, draws=1000, tune=1000, seed=20261127)
    assert b.converged
    assert b.diagnostics["ess_bulk"].min() > 800
    Sig = b.idata.posterior["re_cov"].values.reshape(-1, 2, 2)
    v0, v1 = Sig[:, 0, 0], Sig[:, 1, 1]
    rho = Sig[:, 0, 1] / np.sqrt(v0 * v1)
    reml = {"var_int": 2.3270341**2, "var_age": 0.22642779**2, "corr": -0.60933286}
    for name, draws in (("var_int", v0), ("var_age", v1), ("corr", rho)):
        z = (np.median(draws) - reml[name]) / draws.std()
        assert abs(z) < 0.5, (name, np.median(draws), reml[name], z)
    # the fixed effects: posterior means within a quarter posterior SD of REML (they are nearly Gaussian)
    z = (b.params - pd.Series({"Intercept": 16.761111, "age": 0.66018519})) / b.std_errors
    assert (z.abs() < 0.25).all()


def test_internal_standardisation_is_an_exact_reparametrisation():
    """The sampler's standardised model and the data's model have the same likelihood (up to the Jacobian
    N log s_y) at parameters mapped by InternalScale: the map back is exact, not an approximation."""
    spec, y, X, Z, codes, labels = prepare_mixed(ORTHO_FORMULA, ORTHO)
    scale = InternalScale.standardise(y, X, Z, spec.fixed, spec.random, centre_random=True)
    st = group_stats(y, X, Z, codes)
    st_i = group_stats(*scale.to_internal(y, X, Z), codes)
    rng = np.random.default_rng(4)
    for _ in range(5):
        beta_i = rng.normal(size=2)
        L = np.tril(rng.normal(size=(2, 2))) + np.eye(2)
        Sig_i, s_i = L @ L.T * 0.3, rng.uniform(0.2, 1.0)
        ll_i = integrated_loglik(st_i, beta_i, s_i**2, Sig_i)
        ll = integrated_loglik(st, scale.beta(beta_i), (scale.y_scale * s_i) ** 2, scale.re_cov(Sig_i))
        assert ll == pytest.approx(float(scale.loglik(ll_i, st.n)), rel=1e-12, abs=1e-9)
        # team effects: the conditional means (BLUPs) map the same way, b = s_y A_z b*
        Lam_i, Lam = Sig_i / s_i**2, scale.re_cov(Sig_i) / (scale.y_scale * s_i) ** 2
        b_i = conditional_modes(st_i, beta_i, Lam_i, np.linalg.inv(st_i.S_inv + Lam_i))
        b = conditional_modes(st, scale.beta(beta_i), Lam, np.linalg.inv(st.S_inv + Lam))
        np.testing.assert_allclose(scale.effects(b_i), b, rtol=1e-9, atol=1e-12)
    # uncorrelated effects are never centred (centring would correlate them): the map keeps Sigma diagonal
    spec_u, *_ = prepare_mixed("distance ~ age + (age || Subject)", ORTHO)
    unc = InternalScale.standardise(y, X, Z, spec_u.fixed, spec_u.random, centre_random=spec_u.correlated)
    assert unc.re_cov(np.diag([0.4, 0.3]))[0, 1] == 0.0


# ---------------------------------------------------------------------------------------------------------------
# One reference likelihood (integrated.py, NumPy) and its backends: numba, JAX, PyTensor, pointwise


def _random_problem(seed, q, correlated=True, G=9):
    """Random unbalanced data with q random effects and a random posterior."""
    rng = np.random.default_rng(seed)
    n_g = rng.integers(q + 2, q + 7, size=G)
    codes = np.repeat(np.arange(G), n_g)
    n = len(codes)
    x = rng.normal(size=(n, 3))
    X = np.column_stack([np.ones(n), x])
    Z = X[:, :q]
    y = X @ rng.normal(size=4) + rng.normal(size=n) * 0.7 + rng.normal(size=G)[codes]
    st = group_stats(y, X, Z, codes)
    prior = NormalPrior(
        beta_mu=rng.normal(size=4),
        beta_sd=rng.uniform(0.5, 3, size=4),
        sigma_sd=float(rng.uniform(0.5, 2)),
        re_sd=rng.uniform(0.5, 2, size=q),
        lkj_eta=float(rng.uniform(0.5, 3)),
    )
    return st, prior, (y, X, Z, codes), rng


def _dense_loglik(y, X, Z, codes, beta, sigma2, Sigma):
    return sum(
        stats.multivariate_normal(
            X[codes == g] @ beta, Z[codes == g] @ Sigma @ Z[codes == g].T + sigma2 * np.eye((codes == g).sum())
        ).logpdf(y[codes == g])
        for g in range(codes.max() + 1)
    )


@pytest.mark.parametrize("q", [1, 2, 3])
def test_reference_loglik_equals_dense_marginal_and_its_gradient(q):
    st, _, (y, X, Z, codes), rng = _random_problem(q, q)
    beta = rng.normal(size=4)
    L = np.tril(rng.normal(size=(q, q))) + 2 * np.eye(q)
    Sigma, s2 = L @ L.T / 3, 0.6
    ll, g_beta, g_s2, g_Sig = integrated_loglik(st, beta, s2, Sigma, grad=True)
    assert ll == pytest.approx(_dense_loglik(y, X, Z, codes, beta, s2, Sigma), rel=1e-11)
    h = 1e-6  # central differences: O(h^2) truncation, O(eps/h) rounding, so 1e-6 relative is ample

    def f(b=beta, s=s2, S=Sigma):
        return integrated_loglik(st, b, s, S)

    num_beta = [(f(b=beta + h * e) - f(b=beta - h * e)) / (2 * h) for e in np.eye(4)]
    np.testing.assert_allclose(g_beta, num_beta, rtol=1e-6, atol=1e-6)
    assert g_s2 == pytest.approx((f(s=s2 + h) - f(s=s2 - h)) / (2 * h), rel=1e-6)
    E = np.zeros((q, q))
    E[0, -1] = E[-1, 0] = 1.0  # a symmetric direction: d ll = tr(G dSigma)
    assert np.trace(g_Sig @ E) == pytest.approx((f(S=Sigma + h * E) - f(S=Sigma - h * E)) / (2 * h), rel=1e-6)


@pytest.mark.parametrize("q,correlated", [(1, True), (2, True), (2, False)])
def test_reference_log_posterior_gradient_matches_finite_differences(q, correlated):
    st, prior, _, rng = _random_problem(10 + q, q)
    has_rho = correlated and q == 2
    x = rng.normal(size=4 + 1 + q + int(has_rho)) * 0.5
    _, g = log_posterior(x, st, prior, correlated)
    h = 1e-6
    num = [
        (log_posterior(x + h * e, st, prior, correlated)[0] - log_posterior(x - h * e, st, prior, correlated)[0])
        / (2 * h)
        for e in np.eye(len(x))
    ]
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-6)  # central differences, as above


@pytest.mark.parametrize("q,correlated", [(1, True), (2, True), (2, False)])
def test_numba_backend_equals_reference(q, correlated):
    """The compiled kernel and the NumPy reference agree to 1e-10 (relative) in value and gradient on random
    data and random points: both compute the same float64 sums in a different order, so they differ by a few
    ulps times the number of groups, far below 1e-10."""
    st, prior, _, rng = _random_problem(20 + q, q)
    post = IntegratedPosterior(st, correlated, prior.beta_mu, prior.beta_sd, prior.sigma_sd, prior.re_sd, prior.lkj_eta)
    assert post.compiled
    for _ in range(5):
        x = rng.normal(size=post.ndim) * 0.5
        lp, g = post.logp(x)
        lp_ref, g_ref = log_posterior(x, st, prior, correlated)
        assert lp == pytest.approx(lp_ref, rel=1e-10)
        np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-10 * np.abs(g_ref).max())
        assert post.loglik(x) == pytest.approx(
            integrated_loglik(st, x[:4], np.exp(2 * x[4]), post.covariance(x)), rel=1e-10
        )


@pytest.mark.parametrize("q,correlated", [(1, True), (2, True), (2, False)])
def test_jax_backend_equals_reference(q, correlated):
    """The optional GPU backend (JAX, in the test extras) computes the reference density and gradient to 1e-10,
    in float64 inside its x64 context, and leaves the process-wide jax_enable_x64 flag as it found it."""
    jax = importlib.import_module("jax")  # installed by the test extras; the skip only guards a bare install
    from causalcts.bayes.jaxlogp import make_jax_logp, x64

    before = bool(jax.config.jax_enable_x64)
    st, prior, _, rng = _random_problem(30 + q, q)
    post = IntegratedPosterior(st, correlated, prior.beta_mu, prior.beta_sd, prior.sigma_sd, prior.re_sd, prior.lkj_eta)
    logp = make_jax_logp(post)
    with x64():
        logp, grad = jax.jit(logp), jax.jit(jax.grad(logp))  # one compilation instead of eager dispatch
        for _ in range(5):
            x = rng.normal(size=post.ndim) * 0.5
            lp_ref, g_ref = log_posterior(x, st, prior, correlated)
            val = logp(x)
            assert val.dtype == np.float64
            assert float(val) == pytest.approx(lp_ref, rel=1e-10)
            np.testing.assert_allclose(np.asarray(grad(x)), g_ref, rtol=1e-10, atol=1e-10 * np.abs(g_ref).max())
    assert bool(jax.config.jax_enable_x64) is before


@pytest.mark.parametrize("q,correlated", [(1, True), (2, True), (2, False), (3, True)])
def test_pytensor_likelihood_equals_reference(q, correlated):
    """The PyMC model (sampler="pymc", and any q > 2) computes the reference integrated log-likelihood to 1e-10."""
    from causalcts.bayes.formula_re import MixedFormula

    st, prior, _, rng = _random_problem(40 + q, q)
    names, re_names = ["Intercept", "x1", "x2", "x3"], ["Intercept", "x1", "x2"][:q]
    spec = MixedFormula("y", tuple(names), tuple(re_names), "g", correlated)
    pri = dict(
        beta_mu=prior.beta_mu, beta_sd=prior.beta_sd, sigma_sd=prior.sigma_sd, re_sd=prior.re_sd, lkj_eta=prior.lkj_eta
    )
    model = build_pymc_model(st, spec, pri, names, re_names)
    sigma_cov = model["re_chol"] if (correlated and q > 1) else model["re_sd"]
    outs = model.replace_rvs_by_values([model["loglik"], model["beta"], model["sigma"], sigma_cov])
    fn = model.compile_fn(outs, inputs=model.value_vars, point_fn=True)
    for k in range(3):
        point = {name: v + rng.normal(scale=0.3, size=np.shape(v)) for name, v in model.initial_point(k).items()}
        ll, beta, sigma, cov_param = fn(point)
        if correlated and q > 1:
            L = np.zeros((q, q))
            L[np.tril_indices(q)] = cov_param
            Sigma = L @ L.T
        else:
            Sigma = np.diag(np.asarray(cov_param) ** 2)
        assert float(ll) == pytest.approx(integrated_loglik(st, beta, float(sigma) ** 2, Sigma), rel=1e-10)


def test_pointwise_loglik_sums_to_the_reference():
    """bayes.results.pointwise_loglik (per-team, for LOO) is a second copy of the likelihood: its sum over teams
    equals the reference to 1e-10."""
    from causalcts.bayes.results import pointwise_loglik

    st, _, (y, X, Z, codes), rng = _random_problem(50, 2)
    beta = rng.normal(size=(3, 4))
    Sigma = np.array([[[0.5, 0.1], [0.1, 0.3]]] * 3)
    ll = pointwise_loglik(y, X, Z, codes, beta, np.array([0.4, 0.5, 0.6]), Sigma)
    for d in range(3):
        ref = integrated_loglik(st, beta[d], [0.4, 0.5, 0.6][d], Sigma[d])
        assert ll[d].sum() == pytest.approx(ref, rel=1e-10)


def test_profiled_deviance_is_the_reference_at_the_ml_fit():
    """The REML/ML path (relative covariance, beta and sigma profiled out) and the reference agree at the ML fit."""
    spec, y, X, Z, codes, labels = prepare_mixed("Reaction ~ Days + (Days | Subject)", SLEEP)
    st = group_stats(y, X, Z, codes)
    r = causalcts.mixed("Reaction ~ Days + (Days | Subject)", SLEEP, method="ml")
    dev, info = profiled_deviance(np.array(r.info["theta"]), st, True, False)
    ref = integrated_loglik(st, info["beta"], info["sigma2"], info["sigma2"] * info["Lam"])
    assert -2 * ref == pytest.approx(dev, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# No global side effects; seeds; cores; spec


def test_fitting_leaves_jax_x64_and_the_package_directory_alone():
    """Importing causalcts and fitting with the default sampler leave jax.config.jax_enable_x64 as they found it;
    numba compiles without an on-disk cache (nothing is written next to the installed sources)."""
    jax = importlib.import_module("jax")
    from numba.core.caching import NullCache

    from causalcts.bayes import fastlogp

    before = bool(jax.config.jax_enable_x64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        causalcts.mixed("Reaction ~ Days + (1 | Subject)", SLEEP, chains=1, draws=20, tune=20, seed=1)
    assert bool(jax.config.jax_enable_x64) is before
    kernel, logp = fastlogp._jitted()
    assert isinstance(kernel._cache, NullCache) and isinstance(logp._cache, NullCache)


@pytest.mark.slow
def test_numpyro_sampler_computes_in_float64_without_touching_the_global_flag():
    """sampler="numpyro" (about a minute of JAX compilation on 2 CPU cores) runs in float64 inside a context."""
    jax = importlib.import_module("jax")
    importlib.import_module("numpyro")
    before = bool(jax.config.jax_enable_x64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = causalcts.mixed(
            "Reaction ~ Days + (1 | Subject)", SLEEP, sampler="numpyro", chains=1, draws=20, tune=20, seed=1
        )
    assert r.info["sampler"].startswith("numpyro")
    assert r.idata.posterior["beta"].dtype == np.float64
    assert bool(jax.config.jax_enable_x64) is before


def test_seed_none_is_fresh_and_recorded_and_reproduces():
    kw = dict(method="nuts", chains=1, draws=15, tune=15, team_effect_draws=2)
    f = "Reaction ~ Days + (1 | Subject)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = causalcts.mixed(f, SLEEP, seed=None, **kw)
        b = causalcts.mixed(f, SLEEP, seed=None, **kw)
        assert isinstance(a.info["seed"], int) and a.info["seed"] == a.spec["seed"]
        assert a.info["seed"] != b.info["seed"]  # fresh entropy: two 32-bit draws coincide with prob. 2^-32
        again = causalcts.mixed(f, SLEEP, seed=a.info["seed"], **kw)
        np.testing.assert_array_equal(a.idata.posterior["beta"].values, again.idata.posterior["beta"].values)
        # a Generator is accepted: the same generator state gives the same draws
        g1 = causalcts.mixed(f, SLEEP, seed=np.random.default_rng(5), **kw)
        g2 = causalcts.mixed(f, SLEEP, seed=np.random.default_rng(5), **kw)
    np.testing.assert_array_equal(g1.idata.posterior["beta"].values, g2.idata.posterior["beta"].values)
    assert g1.info["seed"] == g2.info["seed"]
    for bad in (-1, 1.5, "7", True):
        with pytest.raises(CausalCTSError, match="seed"):
            causalcts.mixed(f, SLEEP, seed=bad, **kw)


def test_cores_default_to_all_chains_and_spec_refits():
    f = "Reaction ~ Days + (1 | Subject)"
    kw = dict(method="nuts", chains=2, draws=15, tune=15, seed=3, team_effect_draws=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = causalcts.mixed(f, SLEEP, **kw)
        assert r.info["cores"] == min(2, os.cpu_count() or 1)
        assert r.spec["formula"] == f and r.spec["method"] == "nuts" and r.spec["chains"] == 2
        again = causalcts.mixed(data=SLEEP, **r.spec)
    np.testing.assert_array_equal(r.idata.posterior["beta"].values, again.idata.posterior["beta"].values)
    with pytest.raises(CausalCTSError, match="cores"):
        causalcts.mixed(f, SLEEP, cores=0, **kw)
    reml = causalcts.mixed(f, SLEEP, method="reml")
    assert reml.spec["method"] == "reml" and reml.spec["formula"] == f
