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
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import causalcts
from causalcts import datasets
from causalcts.bayes.fastlogp import IntegratedPosterior
from causalcts.bayes.integrated import group_stats
from causalcts.bayes.mixed import default_prior_scales, prepare_mixed
from causalcts.errors import (
    CausalCTSError,
    ConvergenceWarning,
    MissingColumnError,
    MissingValueError,
    SpecificationError,
)

SLEEP = datasets.load("sleepstudy")
DIETOX = datasets.load("dietox")


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
    smf = pytest.importorskip("statsmodels.formula.api")
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


def test_compiled_and_numpy_log_density_agree():
    a, *_ = _posterior("Reaction ~ Days + (Days | Subject)", compiled=True)
    b, *_ = _posterior("Reaction ~ Days + (Days | Subject)", compiled=False)
    x = a.initial_point(2)
    la, ga = a.logp(x)
    lb, gb = b.logp(x)
    assert la == pytest.approx(lb, rel=1e-12)
    np.testing.assert_allclose(ga, gb, rtol=1e-10)


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


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"])
def test_jax_log_density_equals_the_numba_one(formula):
    """The optional GPU backend (JAX, in the test extras) computes the same log posterior and gradient."""
    jax = pytest.importorskip("jax")  # installed by the test extras; the skip only guards a bare install
    from causalcts.bayes.jaxlogp import make_jax_logp

    post, *_ = _posterior(formula)
    logp = make_jax_logp(post)
    for seed in range(3):
        x = post.initial_point(seed)
        lp, g = post.logp(x)
        assert float(logp(x)) == pytest.approx(lp, rel=1e-12)
        np.testing.assert_allclose(np.asarray(jax.grad(logp)(x)), g, rtol=1e-9)
