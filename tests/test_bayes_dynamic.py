"""The Bayesian dynamic panel (fit(method="bayes")), sensitivity analysis, PPC and SBC."""

import warnings

import numpy as np
import pytest

import causalcts
from causalcts import datasets, simulate
from causalcts.errors import ConvergenceWarning, MissingColumnError, SpecificationError
from causalcts.evaluation import driver_sensitivity, posterior_predictive, prior_sensitivity, sbc_dynamic, sbc_mixed

F = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate"


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return causalcts.fit(*args, **kwargs)


def test_bayes_plumbing_and_terms():
    sim = simulate(60, 10, seed=1)
    r = quiet_fit(
        F,
        sim.data,
        method="bayes",
        chains=2,
        draws=50,
        tune=50,
        seed=2,
        team_effect_draws=2,
        random_slopes=["ai_share"],
    )
    assert list(r.params.index) == [
        "L1.cr_velocity",
        "ai_share",
        "rollback_rate",
        "initial(cr_velocity)",
        "mean(ai_share)",
        "mean(rollback_rate)",
        "Intercept",
    ]
    assert list(r.cov_re.index) == ["Intercept", "ai_share"]
    assert r.method == "bayes" and r.outcome_lags == ("L1.cr_velocity",)
    assert r.idata["team_effects"]["team_effect"].sizes["team"] == 60
    lr = r.long_run("ai_share")
    assert lr["lower"] <= lr["estimate"] <= lr["upper"]


def test_bayes_spec_seed_and_refit():
    """fit(method="bayes") records the seed it drew (seed=None is fresh entropy), fills spec with the formula,
    method and every option, and refitting from spec reproduces the draws bit for bit."""
    sim = simulate(30, 8, seed=4)
    kw = dict(method="bayes", chains=1, draws=20, tune=20, team_effect_draws=1)
    a = quiet_fit(F, sim.data, seed=None, **kw)
    seed = a.info["seed"]
    assert isinstance(seed, int) and a.spec["seed"] == seed
    assert a.spec["formula"] == F and a.spec["method"] == "bayes" and a.spec["chains"] == 1
    assert {"entity", "time", "time_effects", "priors", "prior_scale", "sampler", "cores"} <= set(a.spec)
    again = quiet_fit(**a.spec, data=sim.data)
    np.testing.assert_array_equal(a.idata.posterior["beta"].values, again.idata.posterior["beta"].values)
    g1 = quiet_fit(F, sim.data, seed=np.random.default_rng(9), **kw)
    g2 = quiet_fit(F, sim.data, seed=np.random.default_rng(9), **kw)
    np.testing.assert_array_equal(g1.idata.posterior["beta"].values, g2.idata.posterior["beta"].values)
    assert g1.info["cores"] == 1  # one chain: one core


def test_bayes_errors():
    sim = simulate(20, 6, seed=1)
    with pytest.raises(SpecificationError, match="lag of the outcome"):
        causalcts.fit("cr_velocity ~ ai_share", sim.data, method="bayes")
    with pytest.raises(SpecificationError, match="random_slopes"):
        causalcts.fit(F, sim.data, method="bayes", random_slopes=["pages"])
    with pytest.raises(SpecificationError, match="do not apply"):
        causalcts.fit(F, sim.data, method="bayes", collapse=True)
    with pytest.raises(SpecificationError, match="'chains'.*do not apply to method='within'"):
        causalcts.fit(F, sim.data, method="within", chains=2)


@pytest.mark.slow
@pytest.mark.parametrize("T", [10, 26])
def test_bayes_is_centred_where_within_is_nickell_biased(T):
    """At T = 10 to 26 the within estimator is Nickell-biased; the Bayesian model is centred on the truth."""
    sim = simulate(500, T, effect=0.1, seed=5)
    b = causalcts.fit(F, sim.data, method="bayes", seed=1)
    w = causalcts.fit(F, sim.data, method="within")
    assert b.converged
    assert abs(b.params["L1.cr_velocity"] - 0.5) < 3 * b.std_errors["L1.cr_velocity"]
    assert abs(w.params["L1.cr_velocity"] - 0.5) > 3 * w.std_errors["L1.cr_velocity"]  # negative control
    assert abs(b.params["ai_share"] - 0.1) < 3 * b.std_errors["ai_share"]


def test_driver_sensitivity_ranks_and_converts_to_percent():
    sim = simulate(60, 20, seed=3)
    f = "log_cts ~ cr_velocity + rollback_rate + interventions_per_deploy + pages_per_oncall + (1 | team)"
    r = causalcts.mixed(f, sim.data, method="reml")
    s = driver_sensitivity(r, sim.data)
    assert list(s["rank"]) == [1, 2, 3, 4]
    assert s["effect"].abs().is_monotonic_decreasing
    sd = sim.data["cr_velocity"].std()
    assert s.loc["cr_velocity", "effect"] == pytest.approx(100 * np.expm1(r.params["cr_velocity"] * sd))
    assert (s["lower"] <= s["effect"]).all() and (s["effect"] <= s["upper"]).all()
    with pytest.raises(MissingColumnError):
        driver_sensitivity(r, sim.data.drop(columns="pages_per_oncall"))


def test_tornado_and_caterpillar_plots():
    from causalcts.plots import plot_caterpillar, plot_tornado

    sleep = datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        b = causalcts.mixed(
            "Reaction ~ Days + (Days | Subject)", sleep, chains=2, draws=40, tune=40, seed=1, team_effect_draws=5
        )
    ax = plot_tornado(driver_sensitivity(b, sleep))
    assert len(ax.patches) == 1
    ax = plot_caterpillar(b)
    assert len(ax.lines) >= 1


def test_posterior_predictive_check():
    sleep = datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        b = causalcts.mixed(
            "Reaction ~ Days + (Days | Subject)", sleep, chains=2, draws=60, tune=60, seed=1, team_effect_draws=20
        )
    reps, table = posterior_predictive(b, sleep, n_draws=30, seed=2)
    assert reps.shape == (30, 180)
    assert table["ppp"].between(0, 1).all()
    # the model reproduces the outcome's mean and spread: neither is in a 1 percent tail
    assert 0.01 < table.loc["mean", "ppp"] < 0.99 and 0.01 < table.loc["sd", "ppp"] < 0.99


@pytest.mark.slow
def test_prior_sensitivity_reports_what_moves():
    sleep = datasets.load("sleepstudy")
    table = prior_sensitivity("Reaction ~ Days + (Days | Subject)", sleep, seed=1)
    assert set(table["prior_scale"]) == {0.5, 1.0, 2.0}
    assert "moves" in table.columns
    ref = table[table["prior_scale"] == 1.0]
    assert (ref["shift_in_sd"] == 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("fn", [sbc_mixed, sbc_dynamic])
def test_simulation_based_calibration_small(fn):
    """Ranks of the truth among posterior draws are uniform (chi-square over 5 bins; p > 0.001 for each of
    the quantities, a family-wise false alarm rate under 1 percent)."""
    res = fn(40, seed=7)
    uni = res.uniformity(bins=5)
    assert (uni["pvalue"] > 0.001).all(), uni
    assert "loglik" in res.ranks.columns


def test_calibration_seeds_take_generators_and_none():
    """SBC takes a Generator or None like every random function (its seed is recorded as an int); bad seeds raise."""
    import numpy as np

    from causalcts.errors import CausalCTSError
    from causalcts.evaluation.calibration import _seed_int

    assert _seed_int(np.random.default_rng(5)) == _seed_int(np.random.default_rng(5))
    assert _seed_int(None) != _seed_int(None)  # fresh entropy each time (2**63 values: a clash is not a concern)
    assert _seed_int(7) == 7
    with pytest.raises(CausalCTSError, match="seed"):
        _seed_int(-1)
