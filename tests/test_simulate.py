"""The simulator: reproducibility, truth consistency, and that every knob does what it says."""

import json

import numpy as np
import pandas as pd
import pytest

import causalcts
from causalcts import Panel, simulate
from causalcts.data.schema import TELEMETRY_SCHEMA
from causalcts.errors import CausalCTSError


def within_slope(df, y, x):
    """Slope of y on x after removing team and week means (balanced panels)."""

    def dm(v):
        v = v - df.groupby("team")[v.name].transform("mean")
        return v - v.groupby(df["week"]).transform("mean")

    yy, xx = dm(df[y]), dm(df[x])
    return float((xx * yy).sum() / (xx * xx).sum())


def test_same_seed_same_frame_bit_for_bit():
    a = simulate(40, 15, seed=7, outcome_model="count", missing_weeks=0.1, unbalanced=0.2, feedback=0.5)
    b = simulate(40, 15, seed=7, outcome_model="count", missing_weeks=0.1, unbalanced=0.2, feedback=0.5)
    pd.testing.assert_frame_equal(a.data, b.data, check_exact=True)
    pd.testing.assert_frame_equal(a.truth.teams, b.truth.teams, check_exact=True)
    c = simulate(40, 15, seed=8)
    assert not np.array_equal(a.data["cr_velocity"].to_numpy()[:50], c.data["cr_velocity"].to_numpy()[:50])


def test_generator_seed_is_accepted():
    a = simulate(10, 5, seed=np.random.default_rng(3))
    b = simulate(10, 5, seed=np.random.default_rng(3))
    pd.testing.assert_frame_equal(a.data, b.data)


def test_schema_and_validity():
    sim = simulate(30, 20, seed=1)
    for col in TELEMETRY_SCHEMA:
        assert col in sim.data.columns
    p = sim.panel()  # passes every validation check
    assert p.is_balanced and p.nobs == 600
    assert sim.data["ai_share"].between(0, 1).all()


def test_truth_holds_every_required_parameter():
    sim = simulate(10, 10, persistence=0.6, effect={"cr_velocity": 0.2, "deploys_per_builder": 0.1}, seed=1)
    t = sim.truth
    assert t.persistence["cr_velocity"] == 0.6
    assert t.effect == {"cr_velocity": 0.2, "deploys_per_builder": 0.1}
    assert t.long_run_effect["cr_velocity"] == pytest.approx(0.2 / 0.4)
    assert t.team_sd == sim.design.team_sd
    assert set(t.cts_drivers) == {"cr_velocity", "rollback_rate", "interventions_per_deploy", "pages_per_oncall"}
    assert len(t.teams) == 10


def test_defaults_are_calibrated_to_public_figures():
    sim = simulate(300, 52, seed=2)
    pre = sim.data[sim.data["ai_share"] == 0]
    assert 1.0 <= pre["cr_velocity"].mean() <= 2.0  # about 1 to 2 PRs per developer-week
    lr = sim.truth.long_run_effect["cr_velocity"] / sim.design.baseline["cr_velocity"]
    assert 0.05 <= lr <= 0.25  # full adoption raises throughput by 5 to 25 percent
    team_rb = sim.data.groupby("team")["rollback_rate_latent"].mean()
    assert team_rb.min() >= 0.04 and team_rb.max() <= 0.41  # DORA change failure rates 5 to 40 percent


def test_gaussian_outcome_follows_the_equation():
    """With week shocks off, the equation's residual on the observed columns has the SD it was given,
    plus the rounding of the count (uniform, variance 1 / (12 developers^2))."""
    sim = simulate(50, 30, seed=3, week_sd=0.0)
    d, t = sim.data, sim.truth
    p = Panel(d)
    lag = p.lag("cr_velocity").to_numpy()
    a = t.teams.set_index("team").loc[p.data["team"], "team_effect_cr_velocity"].to_numpy()
    dd = p.data
    resid = (
        dd["cr_velocity"]
        - a
        - t.persistence["cr_velocity"] * lag
        - t.effect["cr_velocity"] * dd["ai_share"]
        - t.covariate_effects["rollback_rate"] * dd["rollback_rate"]
        - t.covariate_effects["interventions_per_deploy"] * dd["interventions_per_deploy"]
    ).dropna()
    sd = np.sqrt(sim.design.noise_sd**2 + np.mean(1 / (12 * dd["developers"].to_numpy(float) ** 2)))
    # 1,450 draws: the sample SD of N(0, sd^2) lies within sd * (1 +- 4/sqrt(2*1450))
    assert abs(resid.std() - sd) < 4 * sd / np.sqrt(2 * len(resid))
    assert abs(resid.mean()) < 4 * sim.design.noise_sd / np.sqrt(len(resid))


def test_null_effect_is_centred_on_zero_across_seeds():
    """With no effect and no selection the within estimate of the adoption effect averages zero."""
    est = []
    for seed in range(30):
        sim = simulate(80, 20, effect=0.0, seed=seed)
        r = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="within")
        est.append(r.params["ai_share"])
    est = np.array(est)
    mc_se = est.std(ddof=1) / np.sqrt(len(est))
    assert abs(est.mean()) < 3 * mc_se  # three Monte Carlo standard errors


def test_effect_heterogeneity():
    sim = simulate(2000, 3, effect=0.1, effect_sd=0.05, seed=4)
    g = sim.truth.teams["effect_cr_velocity"]
    # SD of 2,000 normal draws: within 4 standard errors (0.05 / sqrt(2 * 2000))
    assert abs(g.std() - 0.05) < 4 * 0.05 / np.sqrt(4000)
    assert simulate(50, 3, effect_sd=0.0, seed=4).truth.teams["effect_cr_velocity"].nunique() == 1


def test_effect_buildup_attenuates_the_contemporaneous_slope():
    fast = simulate(300, 40, effect=0.3, persistence=0.0, seed=5)
    slow = simulate(300, 40, effect=0.3, persistence=0.0, effect_buildup=8, seed=5)
    b_fast = within_slope(fast.data, "cr_velocity", "ai_share")
    b_slow = within_slope(slow.data, "cr_velocity", "ai_share")
    assert b_slow < 0.8 * b_fast


def test_selection_makes_high_effect_teams_adopt_earlier():
    for sel, sign in ((1.5, -1), (0.0, 0)):
        sim = simulate(1000, 30, selection=sel, seed=6)
        t = sim.truth.teams
        r = np.corrcoef(t["team_effect_cr_velocity"], t["rollout_start"])[0, 1]
        if sign:
            assert r < -0.3
        else:
            assert abs(r) < 4 / np.sqrt(1000)  # four SEs of a null correlation


def test_feedback_from_outcomes_into_adoption():
    def slope(feedback):
        sim = simulate(400, 40, feedback=feedback, seed=7)
        p = sim.panel()
        d = p.data.assign(d_share=p.diff("ai_share").to_numpy(), lag_y=p.lag("cr_velocity").to_numpy()).dropna()
        d = d[d["ai_share"] > 0]
        return within_slope(d.assign(team=d["team"]), "d_share", "lag_y") if len(d) else 0.0

    assert slope(2.0) > slope(0.0) + 0.02


def test_mediation_moves_rollback_rate():
    sim = simulate(400, 40, mediation=0.1, seed=8)
    assert within_slope(sim.data, "rollback_rate", "ai_share") == pytest.approx(0.1, abs=0.02)
    assert sim.truth.total_effect["cr_velocity"] == pytest.approx(0.1 + (-0.5) * 0.1)
    sim0 = simulate(400, 40, mediation=0.0, seed=8)
    assert abs(within_slope(sim0.data, "rollback_rate", "ai_share")) < 0.02


def test_count_outcomes_are_counts():
    sim = simulate(50, 10, outcome_model="count", seed=9)
    d = sim.data
    np.testing.assert_allclose(d["cr_velocity"], d["crs_merged"] / d["developers"])
    assert (d[["crs_merged", "deployments", "rollbacks"]] % 1 == 0).all().all()


def test_missing_weeks_and_unbalanced_panels():
    sim = simulate(200, 30, missing_weeks=0.1, seed=10)
    share = 1 - len(sim.data) / (200 * 30)
    assert abs(share - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 6000)
    assert sim.panel().has_gaps
    unb = simulate(200, 30, unbalanced=0.5, seed=10).panel()
    assert not unb.is_balanced and not unb.has_gaps
    assert unb.periods_per_entity.min() < 30


def test_adoption_can_fall():
    up = simulate(300, 80, adoption_decline=0.0, seed=11).data.groupby("week")["ai_share"].mean()
    down = simulate(300, 80, adoption_decline=0.03, seed=11).data.groupby("week")["ai_share"].mean()
    assert up.iloc[-1] >= up.max() - 0.05
    assert down.iloc[-1] < down.max() - 0.1


def test_staggered_rollout_starts_at_zero():
    sim = simulate(200, 40, seed=12)
    d = sim.data.merge(sim.truth.teams[["team", "rollout_start"]], on="team")
    assert (d.loc[d["week"] < d["rollout_start"], "ai_share"] == 0).all()
    assert sim.truth.teams["rollout_start"].nunique() > 100


def test_week_shocks():
    calm = simulate(300, 40, week_sd=0.0, seed=13).data.groupby("week")["cr_velocity"].mean().diff().std()
    shaky = simulate(300, 40, week_sd=0.3, seed=13).data.groupby("week")["cr_velocity"].mean().diff().std()
    assert shaky > 3 * calm


def test_cts_equation_is_exact():
    sim = simulate(30, 10, seed=14)
    d = sim.data[sim.data["deployments"] > 0]
    np.testing.assert_allclose(np.log(d["dev_cost"] / d["deployments"]), d["log_cts"], rtol=1e-10)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(persistence=1.0), "persistence"),
        (dict(n_teams=1), "at least 2 teams"),
        (dict(missing_weeks=0.95), "missing_weeks"),
        (dict(noise_sd=-1.0), "noise_sd"),
        (dict(effect={"velocity": 1.0}), "unknown outcome"),
        (dict(outcome_model="poisson"), "outcome_model"),
        (dict(effect_buildup=0.5), "effect_buildup"),
    ],
)
def test_bad_knobs_are_clear_errors(kwargs, match):
    with pytest.raises(CausalCTSError, match=match):
        simulate(**{"n_teams": 10, "n_weeks": 5, **kwargs})


def test_save_writes_parquet_and_json(tmp_path):
    sim = simulate(5, 4, seed=1)
    path = sim.save(tmp_path / "panel.parquet")
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, sim.data)
    assert (tmp_path / "panel.truth.json").exists()


def test_deploys_equation_uses_the_latent_rates():
    """deploys_per_builder is drawn before the week's rollbacks, so its covariates are the latent rates."""
    sim = simulate(50, 30, seed=3, week_sd=0.0)
    t, p = sim.truth, sim.panel()
    dd = p.data
    a = t.teams.set_index("team").loc[dd["team"], "team_effect_deploys_per_builder"].to_numpy()
    resid = (
        dd["deploys_per_builder"]
        - a
        - t.persistence["deploys_per_builder"] * p.lag("deploys_per_builder").to_numpy()
        - t.effect["deploys_per_builder"] * dd["ai_share"]
        - t.covariate_effects["rollback_rate"] * dd["rollback_rate_latent"]
        - t.covariate_effects["interventions_per_deploy"] * dd["interventions_per_deploy_latent"]
    ).dropna()
    sd = np.sqrt(sim.design.noise_sd**2 + np.mean(1 / (12 * dd["developers"].to_numpy(float) ** 2)))
    assert abs(resid.std() - sd) < 4 * sd / np.sqrt(2 * len(resid))  # 4 SEs of a sample SD, as above
    assert abs(resid.mean()) < 4 * sd / np.sqrt(len(resid))


@pytest.mark.parametrize("outcome_model", ["gaussian", "count"])
def test_metric_columns_are_what_a_user_computes_from_the_counts(outcome_model):
    sim = simulate(60, 12, seed=15, outcome_model=outcome_model, missing_weeks=0.1)
    d = sim.data
    assert (d["deployments"] >= 1).all()  # every rate is defined
    recomputed = causalcts.metrics.add_metrics(d[[c for c in d.columns if c in TELEMETRY_SCHEMA]])
    for name in causalcts.metrics.DERIVED:
        if name in d.columns:  # the simulator writes every derived metric but cts_sw
            np.testing.assert_array_equal(d[name].to_numpy(), recomputed[name].to_numpy(), err_msg=name)
    assert {"rollback_rate_latent", "interventions_per_deploy_latent"} <= set(d.columns)
    assert not any(c.endswith("_obs") for c in d.columns)


def test_observed_covariates_recover_the_truth_in_the_velocity_equation():
    """The formulas used with simulated data estimate the truth: within (time effects) at T = 40 is
    Nickell-biased for the lag, but the covariate coefficients are close."""
    sim = simulate(300, 40, seed=16)
    r = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate", sim.data, method="within")
    # five standard errors: the Nickell bias of the lag coefficient leaks little into the covariate
    assert (
        abs(r.params["rollback_rate"] - sim.truth.covariate_effects["rollback_rate"])
        < 5 * r.std_errors["rollback_rate"]
    )


def test_truth_is_read_only_all_the_way_down():
    import dataclasses

    sim = simulate(10, 5, seed=1)
    t = sim.truth
    with pytest.raises(TypeError):
        t.persistence["cr_velocity"] = 0.9
    with pytest.raises(TypeError):
        t.cts_team_sd["intercept"] = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.effect = {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        sim.truth = t
    teams = t.teams
    teams.loc[0, "effect_cr_velocity"] = 123.0
    teams["new"] = 1
    assert t.teams.loc[0, "effect_cr_velocity"] != 123.0 and "new" not in t.teams.columns
    assert isinstance(t.to_dict()["persistence"], dict)  # JSON-ready
    json.dumps(t.to_dict())


def test_simulation_and_truth_survive_pickle_and_deepcopy():
    """joblib and multiprocessing pickle simulations: the copy is equal and as read-only as the original."""
    import copy
    import dataclasses
    import pickle
    from types import MappingProxyType

    sim = simulate(10, 5, seed=1, effect_sd=0.05)

    def check(truth):
        assert truth is not sim.truth
        assert truth.to_dict() == sim.truth.to_dict()
        pd.testing.assert_frame_equal(truth.teams, sim.truth.teams, check_exact=True)
        for f in dataclasses.fields(truth):
            assert type(getattr(truth, f.name)) is type(getattr(sim.truth, f.name)), f.name
        assert isinstance(truth.persistence, MappingProxyType)
        with pytest.raises(TypeError):
            truth.persistence["cr_velocity"] = 0.9
        with pytest.raises(TypeError):
            truth.cts_team_sd["intercept"] = 0.0
        with pytest.raises(dataclasses.FrozenInstanceError):
            truth.effect = {}
        teams = truth.teams
        teams.iloc[0, 0] = -1
        assert truth.teams.iloc[0, 0] != -1

    for copied in (pickle.loads(pickle.dumps(sim.truth)), copy.deepcopy(sim.truth)):
        check(copied)
    for copied in (pickle.loads(pickle.dumps(sim)), copy.deepcopy(sim)):
        pd.testing.assert_frame_equal(copied.data, sim.data, check_exact=True)
        assert copied.design == sim.design and copied.seed == sim.seed
        check(copied.truth)
        with pytest.raises(dataclasses.FrozenInstanceError):
            copied.truth = sim.truth


def test_seeds_reproduce_runs():
    a, b = simulate(20, 6, seed=5), simulate(20, 6, seed=5)
    pd.testing.assert_frame_equal(a.data, b.data, check_exact=True)
    assert a.seed == 5 and a.design.seed_entropy == 5
    g = simulate(20, 6, seed=np.random.default_rng(5))
    pd.testing.assert_frame_equal(g.data, a.data, check_exact=True)  # default_rng(5) is the stream of seed=5
    assert g.seed is None
    fresh1, fresh2 = simulate(20, 6), simulate(20, 6)
    assert fresh1.seed is not None and fresh1.seed != fresh2.seed
    assert not fresh1.data["cr_velocity"].equals(fresh2.data["cr_velocity"])
    again = simulate(20, 6, seed=fresh1.seed)
    pd.testing.assert_frame_equal(again.data, fresh1.data, check_exact=True)
    assert json.loads(json.dumps(fresh1.design.to_dict()))["seed_entropy"] == fresh1.seed


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_bad_seed_is_a_clear_error(seed):
    with pytest.raises(CausalCTSError, match="seed="):
        simulate(10, 5, seed=seed)


#: SHA-256 of the data and truth.teams columns of three simulations, taken before ``cohort_effect`` existed
#: (task D, 2026-11-27): the new knob, left at 0, must leave every run bit for bit what it was.
DEFAULT_DIGESTS = {
    "default": (
        dict(n_teams=30, n_weeks=12, seed=11),
        "ab678c6cb9f677ee91fa84b316b713f9bdfac124fe766859ace1e090694e0c45",
    ),
    "knobs": (
        dict(
            n_teams=30,
            n_weeks=12,
            effect_sd=0.05,
            selection=1.0,
            feedback=1.0,
            mediation=0.5,
            effect_buildup=2.0,
            missing_weeks=0.1,
            unbalanced=0.2,
            seed=12,
        ),
        "8178b62897baf5ec0df1e804c03426430f107a7903512554b7236bf40e6fa3ee",
    ),
    "count": (
        dict(n_teams=30, n_weeks=12, outcome_model="count", seed=13),
        "21a6384fdb62c4f5dfa64203962e7e03fe4195b60745c1f74e64d92e81822d80",
    ),
}


@pytest.mark.parametrize("case", sorted(DEFAULT_DIGESTS))
def test_runs_without_a_cohort_effect_are_unchanged_bit_for_bit(case):
    import hashlib

    kwargs, expected = DEFAULT_DIGESTS[case]
    sim = simulate(**kwargs)
    h = hashlib.sha256()
    for frame in (sim.data, sim.truth.teams):
        for c in frame.columns:
            h.update(c.encode())
            h.update(np.ascontiguousarray(frame[c].to_numpy()).tobytes())
    assert h.hexdigest() == expected
    assert sim.truth.cohort_effect == 0.0


def test_cohort_effect_ties_the_effect_to_the_adoption_cohort():
    sim = simulate(300, 8, effect=0.1, cohort_effect=0.1, seed=3)
    teams, t = sim.truth.teams, sim.truth
    # gamma_i = 0.1 + 0.1 (1 - 2u), u the team's place in the rollout window (0.1 to 0.7 of the 8 weeks):
    # exactly linear in the rollout start, decreasing: early adopters gain more
    u = (teams["rollout_start"] / 8 - 0.1) / 0.6
    np.testing.assert_allclose(teams["effect_cr_velocity"], 0.1 + 0.1 * (1 - 2 * u), atol=1e-12)  # float rounding
    assert teams["effect_cr_velocity"].between(0.0, 0.2).all()
    assert t.effect["cr_velocity"] == 0.1 and t.cohort_effect == 0.1
    assert t.team_average_effect["cr_velocity"] == pytest.approx(teams["effect_cr_velocity"].mean(), abs=1e-15)
    # u ~ U(0, 1): the team average is 0.1 within 3 SE (SE = 0.1 * 2 / sqrt(12) / sqrt(300) = 0.0033)
    assert abs(t.team_average_effect["cr_velocity"] - 0.1) < 3 * 0.0033
    # early adopters carry more of the exposure variation: the regression weighting lands above the ATE.
    # Over 100 panels of this design its mean was 0.1314 (SD 0.0047); 0.115 is more than 3 SD below.
    assert t.exposure_weighted_effect["cr_velocity"] > 0.115
    early_less = simulate(300, 8, effect=0.1, cohort_effect=-0.1, seed=3).truth
    assert early_less.exposure_weighted_effect["cr_velocity"] < 0.085  # the mirror image
    # the truth's new fields are read-only like the rest
    with pytest.raises(TypeError):
        t.exposure_weighted_effect["cr_velocity"] = 0.0  # type: ignore[index]
    json.dumps(t.to_dict())


def test_exposure_weighted_effect_is_the_two_way_regression_coefficient():
    """Without noise, the within (team and week) slope of y = gamma_i E_it on E_it is the weighted effect."""
    sim = simulate(60, 10, effect=0.1, cohort_effect=0.08, effect_sd=0.03, missing_weeks=0.1, seed=5)
    d = sim.data.merge(sim.truth.teams[["team", "effect_cr_velocity"]], on="team")
    d["y"] = d["effect_cr_velocity"] * d["ai_share"]
    # unbalanced after missing weeks: demean by team and week until converged
    x, y = d["ai_share"].astype(float), d["y"].astype(float)
    for _ in range(500):
        x = x - x.groupby(d["team"]).transform("mean")
        x = x - x.groupby(d["week"]).transform("mean")
        y = y - y.groupby(d["team"]).transform("mean")
        y = y - y.groupby(d["week"]).transform("mean")
    slope = float((x * y).sum() / (x * x).sum())
    assert slope == pytest.approx(sim.truth.exposure_weighted_effect["cr_velocity"], abs=1e-9)  # numerics only


def test_homogeneous_effects_make_every_effect_measure_agree():
    t = simulate(50, 10, effect=0.1, seed=2).truth
    assert t.exposure_weighted_effect["cr_velocity"] == pytest.approx(0.1, abs=1e-12)
    assert t.team_average_effect["cr_velocity"] == pytest.approx(0.1, abs=1e-12)


def test_bad_cohort_effect_is_a_clear_error():
    with pytest.raises(CausalCTSError, match="cohort_effect=nan must be a finite number"):
        simulate(10, 5, cohort_effect=float("nan"), seed=1)
