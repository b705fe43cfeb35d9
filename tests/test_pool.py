"""Bayesian partial pooling of rollout effects (causalcts.bayes.pooling.pool) and its shrinkage plot."""

from pathlib import Path

import arviz as az
import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from causalcts.bayes.pooling import MEAN_PRIORS, SD_PRIORS, PooledResults, _check_prior, _PoolingPosterior, pool
from causalcts.errors import (
    CausalCTSError,
    ConvergenceWarning,
    DuplicateKeyError,
    EmptyPanelError,
    MissingColumnError,
    MissingValueError,
    RangeError,
    SpecificationError,
)
from causalcts.results import load

matplotlib.use("Agg")

DATA = Path(__file__).parent / "data"
SCHOOLS = pd.read_csv(DATA / "baggr_schools.csv")  # columns group, tau (estimate), se
COLS = dict(estimate="tau", std_error="se", label="group")


def _tiny(seed=7, **kw):
    """A short run: far too few draws for the ESS threshold, so it must warn and say so."""
    with pytest.warns(ConvergenceWarning, match="pooling sampler"):
        return pool(SCHOOLS, **COLS, chains=2, draws=30, tune=30, seed=seed, **kw)


# ------------------------------------------------------------------ plumbing (fast)
def test_pool_returns_the_results_contract_with_named_dims(tmp_path):
    res = _tiny()
    assert isinstance(res, PooledResults) and res.is_posterior and not res.converged
    assert list(res.params.index) == ["mu", "tau"] and res.params["tau"] > 0
    ge = res.group_effects
    assert list(ge.columns) == ["mean", "sd", "lower", "upper"]
    assert list(ge.index) == list(SCHOOLS["group"]) and ge.index.name == "group"
    assert (ge["lower"] < ge["mean"]).all() and (ge["mean"] < ge["upper"]).all()
    post = res.idata.posterior
    assert post["theta"].dims == ("chain", "draw", "rollout")
    assert list(post["rollout"].values) == list(SCHOOLS["group"])
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 30
    # group_effects are the draws of theta summarised (to float rounding)
    np.testing.assert_allclose(ge["mean"], post["theta"].mean(("chain", "draw")).values, rtol=1e-12)
    # the log-likelihood group is N(y_j | theta_j, se_j) per draw
    ll = res.idata.log_likelihood["tau"].values
    ref = stats.norm(post["theta"].values, SCHOOLS["se"].to_numpy()).logpdf(SCHOOLS["tau"].to_numpy())
    np.testing.assert_allclose(ll, ref, rtol=1e-12)
    pred = res.predict(0.9)
    draws = post["theta_new"].values.ravel()
    assert pred["lower"] < pred["mean"] < pred["upper"] and pred["level"] == 0.9
    assert pred["mean"] == pytest.approx(draws.mean(), rel=1e-12)
    assert res.conf_int(0.5).loc["tau", "lower"] > 0
    text = str(res.summary())
    assert "School H" in text and "Converged: False" in text
    with pytest.raises(CausalCTSError, match="posterior"):
        _ = res.pvalues
    back = load(res.to_json(tmp_path / "pool.json"))
    assert isinstance(back, PooledResults)
    pd.testing.assert_frame_equal(back.group_effects, res.group_effects)
    assert back.predict() == res.predict()


def test_same_seed_gives_bit_identical_draws_and_another_seed_does_not():
    a, b, c = _tiny(seed=11), _tiny(seed=11), _tiny(seed=12)
    for var in ("mu", "tau", "theta", "theta_new"):
        assert np.array_equal(a.idata.posterior[var].values, b.idata.posterior[var].values), var
    assert not np.array_equal(a.idata.posterior["mu"].values, c.idata.posterior["mu"].values)
    assert a.spec["seed"] == 11 and a.info["seed"] == 11
    # a Generator gives its next integer, recorded in spec so the run can be repeated
    with pytest.warns(ConvergenceWarning):
        d = pool(SCHOOLS, **COLS, chains=2, draws=30, tune=30, seed=np.random.default_rng(3))
    with pytest.warns(ConvergenceWarning):
        e = pool(SCHOOLS, **{**d.spec})
    assert np.array_equal(d.idata.posterior["theta"].values, e.idata.posterior["theta"].values)


PRIORS = [
    (
        ("normal", 0, 5),
        ("halfcauchy", 5),
        lambda m: stats.norm(0, 5).logpdf(m),
        lambda t: stats.halfcauchy(0, 5).logpdf(t),
    ),
    (
        ("student_t", 3, 1, 2),
        ("halfnormal", 4),
        lambda m: stats.t(3, 1, 2).logpdf(m),
        lambda t: stats.halfnorm(0, 4).logpdf(t),
    ),
    (
        ("normal", -2, 10),
        ("exponential", 0.5),
        lambda m: stats.norm(-2, 10).logpdf(m),
        lambda t: stats.expon(0, 2).logpdf(t),
    ),
]


@pytest.mark.parametrize("prior_mean, prior_sd, ref_mu, ref_tau", PRIORS, ids=["cauchy", "t-halfnormal", "exponential"])
def test_log_density_and_gradient_match_scipy(prior_mean, prior_sd, ref_mu, ref_tau):
    y, se = SCHOOLS["tau"].to_numpy(), SCHOOLS["se"].to_numpy()
    post = _PoolingPosterior(
        y, se, _check_prior("prior_mean", prior_mean, MEAN_PRIORS), _check_prior("prior_sd", prior_sd, SD_PRIORS)
    )

    def exact(x):  # full log density in (mu, log tau, eta) with scipy's densities and the Jacobian tau
        mu, tau, eta = x[0], np.exp(x[1]), x[2:]
        theta = mu + tau * eta
        return ref_mu(mu) + ref_tau(tau) + x[1] + stats.norm.logpdf(eta).sum() + stats.norm(theta, se).logpdf(y).sum()

    rng = np.random.default_rng(0)
    xs = [rng.normal(size=post.ndim) for _ in range(4)]
    # differences remove the normalising constants that logp leaves out; 1e-9 is float rounding of sums ~ 1e2
    for x1, x2 in zip(xs[:-1], xs[1:], strict=True):
        assert post.logp(x1)[0] - post.logp(x2)[0] == pytest.approx(exact(x1) - exact(x2), abs=1e-9)
    # analytic gradient against central finite differences (step 1e-6: error ~1e-6 relative to |grad| ~ 1..10)
    for x in xs:
        num = optimize.approx_fprime(x, lambda v: post.logp(v)[0], 1e-6)
        np.testing.assert_allclose(post.logp(x)[1], num, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda f: f.drop(columns="se"), MissingColumnError, "se"),
        (lambda f: f.assign(se=f["se"].where(f.index != 2)), MissingValueError, "School C"),
        (lambda f: f.assign(se=f["se"].where(f.index != 1, 0.0)), RangeError, "School B"),
        (lambda f: f.assign(se=f["se"].where(f.index != 4, -3.0)), RangeError, "School E"),
        (lambda f: f.assign(tau=f["tau"].where(f.index != 0, np.inf)), MissingValueError, "School A"),
        (lambda f: f.assign(tau=f["tau"].astype(object).where(f.index != 0, "big")), Exception, "numeric"),
        (lambda f: f.assign(group=f["group"].replace("School D", "School A")), DuplicateKeyError, "School A"),
        (lambda f: f.iloc[:1], EmptyPanelError, "at least 2"),
    ],
    ids=["missing-col", "nan-se", "zero-se", "negative-se", "inf-estimate", "text-estimate", "duplicate", "one"],
)
def test_bad_input_raises_errors_naming_the_culprit(change, error, match):
    with pytest.raises(error, match=match):
        pool(change(SCHOOLS.copy()), **COLS, draws=10, tune=10, seed=0)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(prior_mean=("cauchy", 0, 5)), "'normal', loc, scale.*'student_t', nu, loc, scale"),
        (dict(prior_sd=("gamma", 2, 1)), "'halfcauchy', scale.*'halfnormal', scale.*'exponential', rate"),
        (dict(prior_sd=("halfnormal", 0)), "positive"),
        (dict(prior_mean=("normal", 0)), "2 argument"),
        (dict(prior_mean="normal"), "allowed priors"),
    ],
)
def test_unsupported_priors_list_the_allowed_ones(kw, match):
    with pytest.raises(SpecificationError, match=match):
        pool(SCHOOLS, **COLS, draws=10, tune=10, seed=0, **kw)


def test_shrinkage_plot_shows_raw_and_pooled_rows():
    from causalcts.plots.pooling_plots import plot_pooling

    res = _tiny()
    ax = plot_pooling(res, level=0.8)
    ticks = sorted(((t.get_position()[1], t.get_text()) for t in ax.get_yticklabels()), reverse=True)
    assert [text for _, text in ticks] == list(SCHOOLS["group"])  # first rollout at the top
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(s.startswith("raw estimate") for s in labels) and "pooled (posterior)" in labels
    assert any(s.startswith("mu: 80% interval") for s in labels)
    with pytest.raises(Exception, match="pool"):
        plot_pooling(object())
    matplotlib.pyplot.close("all")


# ------------------------------------------------------------------ reference posterior (real sampling)
# posteriordb (github.com/stan-dev/posteriordb, commit 28f8d3d6e975315f42aa274a8399f21e07a43b30),
# posterior eight_schools-eight_schools_noncentered: Stan, 10 chains x 1000 kept draws (iter 20000, thin 10,
# adapt_delta 0.95, 0 divergences). Means and SDs computed from
# reference_posteriors/draws/draws/eight_schools-eight_schools_noncentered.json.zip; the means equal the
# published reference_posteriors/summary_statistics/mean_value file, whose mcse_mean is the reference's MC
# error of a mean; the MC error of an SD is arviz's mcse(method="sd") formula applied to the reference draws.
#            mean     mcse(mean)  sd     mcse(sd)
REFERENCE = {
    "mu": (4.4105, 0.0330, 3.3093, 0.0238),
    "tau": (3.6021, 0.0319, 3.1985, 0.0455),
    "School A": (6.1505, 0.0557, 5.6159, 0.0622),
    "School B": (4.9396, 0.0462, 4.6456, 0.0412),
    "School C": (3.9059, 0.0542, 5.2807, 0.0562),
    "School D": (4.7960, 0.0475, 4.7709, 0.0436),
    "School E": (3.6144, 0.0461, 4.6147, 0.0413),
    "School F": (4.0511, 0.0485, 4.7962, 0.0452),
    "School G": (6.3172, 0.0499, 5.0029, 0.0464),
    "School H": (4.8840, 0.0543, 5.3177, 0.0636),
}


def _mcse_sd(draws: np.ndarray) -> float:
    """arviz's MCSE of the SD (delta method on the squared deviations' mean ESS).

    Written out because arviz 0.23 ``mcse(method="sd")`` raises TypeError under numba with NumPy 2.4.
    """
    c2 = (draws - draws.mean()) ** 2
    ess = np.asarray(az.ess(c2, method="mean")).item()
    return float(np.sqrt(c2.var() / ess / c2.mean() / 4))


def test_eight_schools_matches_the_posteriordb_reference_within_3_mcse():
    """Eight schools (BDA3 Table 5.2, baggr's ``schools``) with mu ~ N(0, 5), tau ~ half-Cauchy(0, 5).

    Posterior means and SDs of mu, tau and theta[1..8] must lie within 3 combined Monte Carlo standard
    errors, sqrt(mcse_ours^2 + mcse_ref^2), of posteriordb's reference (numbers and source above the
    test): 3 SE is a 0.3% two-sided miss rate per quantity for a correct sampler. Ours: arviz.mcse
    (mean) and the same arviz formula for the SD on our own 4 x 1000 draws, seed fixed (chosen before the
    first run). Not marked slow: the fit takes about 9 s (20 s under load), under the 20 s threshold.
    """
    res = pool(SCHOOLS, **COLS, seed=20240611)  # the defaults: 4 chains, 1000 draws, 1000 tune
    assert res.converged and res.info["divergences"] == 0
    post = res.idata.posterior
    draws = {"mu": post["mu"].values, "tau": post["tau"].values}
    draws.update({s: post["theta"].sel(rollout=s).values for s in SCHOOLS["group"]})
    for name, (m_ref, se_m_ref, sd_ref, se_sd_ref) in REFERENCE.items():
        d = draws[name]
        se_m = np.asarray(az.mcse(d, method="mean")).item()
        tol_m = 3 * np.hypot(se_m, se_m_ref)
        assert abs(d.mean() - m_ref) < tol_m, (name, "mean", d.mean(), m_ref, tol_m)
        tol_s = 3 * np.hypot(_mcse_sd(d), se_sd_ref)
        assert abs(d.std(ddof=1) - sd_ref) < tol_s, (name, "sd", d.std(ddof=1), sd_ref, tol_s)
    # partial pooling: every school's pooled mean lies between mu's mean and its raw estimate
    mu = res.params["mu"]
    raw = SCHOOLS.set_index("group")["tau"]
    ge = res.group_effects["mean"]
    assert ((ge - mu) * (raw - ge) >= 0).all()
    # the new-rollout effect is wider than mu (it adds tau's spread): SD(mu + tau z)^2 = Var(mu) + E(tau^2)
    pred = res.predict()
    expected_sd = np.sqrt(draws["mu"].var() + (draws["tau"] ** 2).mean())
    assert pred["sd"] == pytest.approx(expected_sd, rel=0.05)  # 5%: MC error of 4000 z draws on an SD (~1.1%)
