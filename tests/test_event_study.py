"""Event studies of rollouts: TWFE, Sun and Abraham, distributed leads and lags of a share.

Reference data: ``tests/data/mpdta.csv`` (R package did's ``mpdta``, Callaway and Sant'Anna 2021; provenance in
tests/data/README.md). Oracle: pyfixest 0.60 ``feols`` with ``vcov={"CRV1": "countyreal"}``, run in the tests
(pyfixest matches R fixest at rtol 1e-8 in its own test suite). Both sides are exact least squares in float64,
so coefficients and standard errors must agree to 1e-8 (observed ~1e-16).
"""

import importlib
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from causalcts.did import event_study, onset_cohort
from causalcts.errors import (
    CohortNotConstantError,
    CollinearityError,
    DataWarning,
    NoControlGroupError,
    NonNumericError,
    NoTreatmentVariationError,
    SpecificationError,
    TooFewClustersError,
    TreatmentError,
)
from causalcts.inference import wild_cluster_bootstrap

matplotlib.use("Agg")
pf = importlib.import_module("pyfixest")  # a test-only oracle, installed with the test extras: missing, the tests fail

MPDTA = Path(__file__).parent / "data" / "mpdta.csv"
TOL = 1e-8  # both exact least squares in float64 (see module docstring)


@pytest.fixture(scope="module")
def mpdta():
    return pd.read_csv(MPDTA)


def _pf(df, rhs):
    return pf.feols(f"lemp ~ {rhs} | countyreal + year", df, vcov={"CRV1": "countyreal"})


def test_twfe_equals_pyfixest_on_mpdta(mpdta):
    """pyfixest: ``feols("lemp ~ i(rel_year, ref=-1) | countyreal + year", vcov={"CRV1": "countyreal"})`` with the
    never-treated coded rel_year = -1, so that they carry no dummy (the reference)."""
    before = mpdta.copy()
    res = event_study(mpdta, outcome="lemp", entity="countyreal", time="year", onset="first.treat", never=0)
    pd.testing.assert_frame_equal(mpdta, before)  # the caller's data is untouched
    d = mpdta.assign(rel_year=np.where(mpdta["first.treat"] > 0, mpdta["year"] - mpdta["first.treat"], -1))
    fit = _pf(d, "i(rel_year, ref=-1)")
    assert list(res.params.index) == ["e-4", "e-3", "e-2", "e0", "e1", "e2", "e3"]
    assert res.info["event_times"] == [-4, -3, -2, 0, 1, 2, 3]
    np.testing.assert_allclose(res.params.to_numpy(), fit.coef().to_numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(res.std_errors.to_numpy(), fit.se().to_numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(res.cov.to_numpy(), fit._vcov, rtol=TOL, atol=TOL**2)
    # fixest's clustered intervals use t(G - 1) = t(499)
    assert res.df_resid == 499
    np.testing.assert_allclose(res.conf_int().to_numpy(), fit.confint().to_numpy(), rtol=TOL, atol=TOL)
    # joint pre-trend test: pyfixest's Wald chi2 on the three leads
    R = np.zeros((3, 7))
    R[[0, 1, 2], [0, 1, 2]] = 1
    wald = fit.wald_test(R=R, distribution="chi2")
    pre = res.tests["pretrend"]
    assert pre["df"] == 3 and pre["df_denom"] == 499 and pre["terms"] == "e-4, e-3, e-2"
    np.testing.assert_allclose([pre["chi2"], pre["chi2_pvalue"]], [wald["statistic"], wald["pvalue"]], rtol=1e-8)
    assert pre["statistic"] == pytest.approx(pre["chi2"] / 3, rel=1e-12)


def test_binary_treatment_column_gives_the_same_fit(mpdta):
    """An absorbing 0/1 column (treated from first.treat on) defines the same onsets as the onset column."""
    d = mpdta.assign(d=((mpdta["first.treat"] > 0) & (mpdta["year"] >= mpdta["first.treat"])).astype(int))
    a = event_study(d, outcome="lemp", entity="countyreal", time="year", treatment="d")
    b = event_study(d, outcome="lemp", entity="countyreal", time="year", onset="first.treat", never=0)
    pd.testing.assert_series_equal(a.params, b.params, rtol=1e-12)
    pd.testing.assert_series_equal(a.std_errors, b.std_errors, rtol=1e-12)


def test_binned_end_points_equal_pyfixest_on_clipped_event_time(mpdta):
    """leads=3, lags=1: e-3 collects event times <= -3 and e1 those >= 1 (pyfixest on the clipped rel_year)."""
    res = event_study(
        mpdta, outcome="lemp", entity="countyreal", time="year", onset="first.treat", never=0, leads=3, lags=1
    )
    g = mpdta["first.treat"]
    d = mpdta.assign(rb=np.where(g > 0, np.clip(mpdta["year"] - g, -3, 1), -1))
    fit = _pf(d, "i(rb, ref=-1)")
    assert list(res.params.index) == ["e-3", "e-2", "e0", "e1"]
    assert res.info["binned"] == {"e-3": "<= -3", "e1": ">= 1"}
    np.testing.assert_allclose(res.params.to_numpy(), fit.coef().to_numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(res.std_errors.to_numpy(), fit.se().to_numpy(), rtol=TOL, atol=TOL)


def test_sun_abraham_equals_saturated_regression_and_share_weights(mpdta):
    """Oracle: pyfixest 0.60 has no ``sunab()`` (its SaturatedEventStudy.aggregate fails on 0.60), so the
    reference is a hand-built saturated regression, ``feols("lemp ~ i(cell, ref='ref') | countyreal + year")``
    with one dummy per (cohort, event time) cell of treated counties (event time -1 and the never-treated in the
    reference), aggregated here by each cohort's share of the observations at each event time, with the
    delta-method covariance W V W' (weights fixed, as fixest's ``aggregate()``)."""
    res = event_study(
        mpdta, outcome="lemp", entity="countyreal", time="year", onset="first.treat", never=0, method="sun-abraham"
    )
    g, rel = mpdta["first.treat"], mpdta["year"] - mpdta["first.treat"]
    cell = np.where((g > 0) & (rel != -1), g.astype(str) + "_" + rel.astype(str), "ref")
    d = mpdta.assign(cell=cell, rel=rel)
    fit = _pf(d, "i(cell, ref='ref')")
    names = [n.split("::")[1] for n in fit.coef().index]
    b, V = fit.coef().to_numpy(), fit._vcov
    counts = d[d["cell"] != "ref"].groupby("cell").size()
    times = sorted({int(n.split("_")[1]) for n in names})
    W = np.zeros((len(times), len(names)))
    for j, n in enumerate(names):
        W[times.index(int(n.split("_")[1])), j] = counts[n]
    W /= W.sum(axis=1, keepdims=True)
    assert res.info["event_times"] == times
    np.testing.assert_allclose(res.params.to_numpy(), W @ b, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(res.std_errors.to_numpy(), np.sqrt(np.diag(W @ V @ W.T)), rtol=TOL, atol=TOL)
    cohort = res.info["cohort_effects"]
    for n, bj in zip(names, b, strict=True):
        c, e = n.split("_")
        assert cohort[f"{c}:e{e}"]["estimate"] == pytest.approx(bj, rel=TOL, abs=TOL)
    # where only one cohort is observed the aggregate is that cohort's effect; e0 mixes all three
    assert res.params["e3"] == pytest.approx(cohort["2004:e3"]["estimate"], rel=1e-12)
    assert res.info["weights"]["e0"] == pytest.approx({"2004:e0": 20 / 191, "2006:e0": 40 / 191, "2007:e0": 131 / 191})


def test_sun_abraham_last_treated_control(mpdta):
    """control="last": the 2007 cohort is the control and 2007 is dropped (a DataWarning counts the rows)."""
    treated = mpdta[mpdta["first.treat"] > 0]
    with pytest.raises(NoControlGroupError, match='control="last"'):
        event_study(treated, outcome="lemp", entity="countyreal", time="year", onset="first.treat",
                    method="sun-abraham")  # fmt: skip
    with pytest.warns(DataWarning, match="Dropped 191 rows"):
        res = event_study(treated, outcome="lemp", entity="countyreal", time="year", onset="first.treat",
                          method="sun-abraham", control="last")  # fmt: skip
    assert res.info["control_cohort"] == "2007" and res.nobs == 191 * 4
    d = treated[treated["year"] < 2007]
    rel = d["year"] - d["first.treat"]
    cell = np.where((d["first.treat"] < 2007) & (rel != -1), d["first.treat"].astype(str) + "_" + rel.astype(str), "r")
    fit = _pf(d.assign(cell=cell), "i(cell, ref='r')")
    # the 2004 cohort alone is observed at e1, e2: aggregates are its coefficients
    for e in (1, 2):
        assert res.params[f"e{e}"] == pytest.approx(fit.coef()[f"cell::2004_{e}"], rel=TOL, abs=TOL)
        assert res.std_errors[f"e{e}"] == pytest.approx(fit.se()[f"cell::2004_{e}"], rel=TOL, abs=TOL)


def _share_panel(seed=0, n=40, T=10):
    rng = np.random.default_rng(seed)
    team, week = np.repeat(np.arange(n), T), np.tile(np.arange(T), n)
    start = rng.integers(2, 9, n)[team]
    share = np.clip((week - start + 1) / 4, 0, 1) * rng.uniform(0.5, 1, n)[team]
    y = rng.normal(size=n)[team] + 0.05 * week + 0.8 * share + rng.normal(0, 0.2, n * T)
    return pd.DataFrame({"team": team, "week": week, "ai_share": share, "y": y})


def test_share_distributed_leads_and_lags_equal_pyfixest():
    """pyfixest: ``feols("y ~ F2 + F1 + s + L1 + L2 | team + week", vcov={"CRV1": "team"})`` on shifted columns
    built with pandas ``groupby().shift`` (rows with a missing lead or lag dropped on both sides)."""
    df = _share_panel()
    with pytest.warns(DataWarning, match="Dropped 160 of 400 rows"):  # 2 leads + 2 lags lose 4 of 10 weeks
        res = event_study(df, outcome="y", entity="team", time="week", share="ai_share", leads=2, lags=2)
    s = df.groupby("team")["ai_share"]
    d = df.assign(F2=s.shift(-2), F1=s.shift(-1), s0=df["ai_share"], L1=s.shift(1), L2=s.shift(2)).dropna()
    fit = pf.feols("y ~ F2 + F1 + s0 + L1 + L2 | team + week", d, vcov={"CRV1": "team"})
    assert list(res.params.index) == ["F2.ai_share", "F1.ai_share", "ai_share", "L1.ai_share", "L2.ai_share"]
    np.testing.assert_allclose(res.params.to_numpy(), fit.coef().to_numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(res.std_errors.to_numpy(), fit.se().to_numpy(), rtol=TOL, atol=TOL)
    assert res.tests["pretrend"]["terms"] == "F2.ai_share, F1.ai_share"


def _small_rollout(G=8, T=6, seed=1):
    rng = np.random.default_rng(seed)
    team, week = np.repeat(np.arange(G), T), np.tile(np.arange(T), G)
    onset = np.where(np.arange(G) % 2 == 0, 2 + np.arange(G) % 3, np.nan)[team]
    y = rng.normal(size=G)[team] + 0.1 * week + 0.5 * (week >= onset) + rng.normal(0, 0.5, G * T)
    return pd.DataFrame({"team": team, "week": week, "onset": onset, "y": y})


def test_wild_bootstrap_with_team_effects_partialled_equals_full_dummy_design():
    """cov="wild" partials out the team effects (nested in the team clusters) and keeps week dummies. That must
    equal the bootstrap on the explicit design with every team and week dummy; t statistics equal CRV1's."""
    df = _small_rollout()
    res = event_study(df, outcome="y", entity="team", time="week", onset="onset", cov="wild", draws=999, seed=4)
    wild = res.info["wild"]
    assert set(wild) == set(res.params.index) and all(w["enumerated"] and w["draws"] == 256 for w in wild.values())
    np.testing.assert_allclose([wild[n]["statistic"] for n in res.params.index], res.tstats, rtol=1e-10)
    rel = df["week"] - df["onset"]
    cols = {f"e{e}": (rel == e).astype(float) for e in res.info["event_times"]}
    X = pd.concat([pd.DataFrame(cols), pd.get_dummies(df["team"], dtype=float),
                   pd.get_dummies(df["week"], dtype=float, drop_first=True)], axis=1).to_numpy()  # fmt: skip
    for j, name in enumerate(res.params.index):
        full = wild_cluster_bootstrap(X, df["y"].to_numpy(), df["team"].to_numpy(), restriction=j, draws=999)
        # same estimator, the same 256 sign vectors: equal up to round-off
        assert wild[name]["pvalue"] == pytest.approx(full.pvalue, abs=1e-12)
        np.testing.assert_allclose([wild[name]["lower"], wild[name]["upper"]], [full.lower, full.upper], rtol=1e-7)


def test_dates_give_the_same_fit_as_week_numbers():
    df = _small_rollout(G=12)
    start = pd.Timestamp("2024-01-01")
    dated = df.assign(
        week=start + pd.to_timedelta(7 * df["week"], unit="D"),
        onset=start + pd.to_timedelta(7 * df["onset"], unit="D"),
    )
    a = event_study(df, outcome="y", entity="team", time="week", onset="onset")
    b = event_study(dated, outcome="y", entity="team", time="week", onset="onset")
    pd.testing.assert_series_equal(a.params, b.params, rtol=1e-12)
    sa = event_study(dated, outcome="y", entity="team", time="week", onset="onset", method="sun-abraham")
    assert any(k.startswith("2024-01-15:") for k in sa.info["cohort_effects"])


def test_monthly_dates_lag_by_calendar_month():
    """Months have 28 to 31 days: a fixed day step would put onsets between periods (regression test)."""
    df = _small_rollout(G=12)
    start = pd.Period("2024-01", freq="M")
    month = lambda k: (start + int(k)).to_timestamp() if np.isfinite(k) else pd.NaT  # noqa: E731
    dated = df.assign(week=df["week"].map(month), onset=df["onset"].map(month))
    a = event_study(df, outcome="y", entity="team", time="week", onset="onset")
    b = event_study(dated, outcome="y", entity="team", time="week", onset="onset")
    pd.testing.assert_series_equal(a.params, b.params, rtol=1e-12)
    sa = event_study(dated, outcome="y", entity="team", time="week", onset="onset", method="sun-abraham")
    assert any(k.startswith("2024-03-01:") for k in sa.info["cohort_effects"])


def _dated(df):
    start = pd.Timestamp("2024-01-01")
    return df.assign(
        week=start + pd.to_timedelta(7 * df["week"], unit="D"),
        onset=start + pd.to_timedelta(7 * df["onset"], unit="D"),  # NaT: never treated
    )


def test_iso_date_strings_from_a_csv_give_the_same_fit(tmp_path):
    """Dates read from a CSV are ISO text (object dtype): parsed as Panel parses them (regression test)."""
    df = _small_rollout(G=12)
    dated = _dated(df)
    dated.to_csv(tmp_path / "rollout.csv", index=False)
    text = pd.read_csv(tmp_path / "rollout.csv")
    assert not pd.api.types.is_datetime64_any_dtype(text["week"]) and isinstance(text["onset"].dropna()[0], str)
    before = text.copy()
    a = event_study(df, outcome="y", entity="team", time="week", onset="onset")
    b = event_study(text, outcome="y", entity="team", time="week", onset="onset")
    pd.testing.assert_frame_equal(text, before)  # the caller's data is untouched
    pd.testing.assert_series_equal(a.params, b.params, rtol=1e-12)
    pd.testing.assert_series_equal(a.std_errors, b.std_errors, rtol=1e-12)
    o = event_study(text.astype({"week": object, "onset": object}), outcome="y", entity="team", time="week",
                    onset="onset")  # fmt: skip
    pd.testing.assert_series_equal(a.params, o.params, rtol=1e-12)
    # text time with datetime onsets, and datetime time with text onsets, mix freely
    c = event_study(text.assign(onset=dated["onset"]), outcome="y", entity="team", time="week", onset="onset")
    pd.testing.assert_series_equal(a.params, c.params, rtol=1e-12)
    sa = event_study(text, outcome="y", entity="team", time="week", onset="onset", method="sun-abraham")
    assert any(k.startswith("2024-01-15:") for k in sa.info["cohort_effects"])


def test_date_strings_that_do_not_parse_name_the_column():
    text = _dated(_small_rollout(G=12)).astype({"week": str})
    text["onset"] = text["onset"].dt.strftime("%Y-%m-%d")
    with pytest.raises(NonNumericError, match="Time column 'week'.*'junk'"):
        event_study(text.assign(week=text["week"].where(text.index != 3, "junk")),
                    outcome="y", entity="team", time="week", onset="onset")  # fmt: skip
    with pytest.raises(TreatmentError, match="onset column 'onset' must hold dates.*'soon'"):
        event_study(text.assign(onset=text["onset"].fillna("soon")), outcome="y", entity="team", time="week",
                    onset="onset")  # fmt: skip


def test_date_cohorts_of_onset_cohort_and_a_zero_never_code():
    """onset_cohort's date cohorts (NaT: never) pass as they are; 0 as never-treated in a date panel gets a hint
    at never=0 instead of being read as 1970-01-01 (regression test)."""
    df = _small_rollout(G=12)
    dated = _dated(df)
    a = event_study(dated, outcome="y", entity="team", time="week", onset="onset")
    dated["share"] = (dated["week"] >= dated["onset"]).astype(float)
    coh = onset_cohort(dated, entity="team", time="week", share="share")
    assert coh.dtype == "datetime64[ns]" and coh.isna().sum() == 6
    with_cohort = dated.merge(coh, left_on="team", right_index=True)
    b = event_study(with_cohort, outcome="y", entity="team", time="week", onset="cohort")
    pd.testing.assert_series_equal(a.params, b.params, rtol=1e-12)
    zero = with_cohort.assign(cohort=with_cohort["cohort"].astype(object).where(with_cohort["cohort"].notna(), 0))
    with pytest.raises(TreatmentError, match=r"hold the number\(s\) \[0\].*never=0"):
        event_study(zero, outcome="y", entity="team", time="week", onset="cohort")
    c = event_study(zero, outcome="y", entity="team", time="week", onset="cohort", never=0)
    pd.testing.assert_series_equal(a.params, c.params, rtol=1e-12)


def test_zero_onsets_before_the_data_hint_at_never():
    """Integer periods from 1: an undeclared never-treated code 0 drops those teams as always treated; the
    warning says so and suggests never=0. Onsets between periods outside the data get the hint too."""
    df = _small_rollout(G=12).assign(week=lambda d: d["week"] + 1, onset=lambda d: (d["onset"] + 1).fillna(0))
    with pytest.warns(DataWarning, match="treated from their first observed period.*never=0"):
        event_study(df, outcome="y", entity="team", time="week", onset="onset", leads=1, lags=1)
    with pytest.raises(TreatmentError, match=r"whole periods.*\[-0.5\].*never=0"):
        event_study(df.assign(onset=df["onset"].replace(0, -0.5)), outcome="y", entity="team", time="week",
                    onset="onset")  # fmt: skip
    with pytest.raises(TreatmentError, match=r"whole periods.*\[3.5\]\.$"):
        event_study(df.assign(onset=df["onset"].replace(3, 3.5)), outcome="y", entity="team", time="week",
                    onset="onset", never=0)  # fmt: skip


def test_always_treated_teams_are_dropped_with_a_warning():
    df = _small_rollout(G=12)
    df.loc[df["team"] == 1, "onset"] = 0.0  # treated from its first week
    with pytest.warns(DataWarning, match="Dropped 6 rows of 1 team"):
        res = event_study(df, outcome="y", entity="team", time="week", onset="onset")
    assert res.nobs == 66


# ------------------------------------------------------------------------------------------ bad input
def test_treatment_that_never_varies(mpdta):
    with pytest.raises(NoTreatmentVariationError, match="'d' is 0 in every row"):
        event_study(mpdta.assign(d=0), outcome="lemp", entity="countyreal", time="year", treatment="d")
    with pytest.raises(NoTreatmentVariationError, match="every team as never treated"):
        event_study(mpdta.assign(o=np.nan), outcome="lemp", entity="countyreal", time="year", onset="o")
    with pytest.raises(NoTreatmentVariationError, match="'lpop' never varies"):
        event_study(mpdta, outcome="lemp", entity="countyreal", time="year", share="lpop", leads=1, lags=1)


def test_reference_period_outside_the_data(mpdta):
    with pytest.raises(SpecificationError, match=r"reference=-7 is outside the data.*\[-4, -3, -2, -1, 0, 1, 2, 3\]"):
        event_study(mpdta, outcome="lemp", entity="countyreal", time="year", onset="first.treat", never=0,
                    reference=-7)  # fmt: skip
    with pytest.raises(SpecificationError, match="reference=-1 is outside"):  # window [0, 2] excludes -1
        event_study(mpdta, outcome="lemp", entity="countyreal", time="year", onset="first.treat", never=0,
                    leads=0, lags=2)  # fmt: skip


def test_fewer_than_two_clusters(mpdta):
    with pytest.raises(TooFewClustersError, match="at least two clusters"):
        event_study(mpdta.assign(state=1), outcome="lemp", entity="countyreal", time="year", onset="first.treat",
                    never=0, cluster="state")  # fmt: skip


def test_non_absorbing_binary_treatment(mpdta):
    d = mpdta.assign(d=((mpdta["first.treat"] > 0) & (mpdta["year"] >= mpdta["first.treat"])).astype(int))
    d.loc[(d["countyreal"] == 8001) & (d["year"] == 2007), "d"] = 0
    d.loc[(d["countyreal"] == 8001) & (d["year"] == 2005), "d"] = 1
    with pytest.raises(
        TreatmentError, match=r"not absorbing.*countyreal \[8001\].*\(countyreal, year\) = \(8001, 2006\)"
    ):
        event_study(d, outcome="lemp", entity="countyreal", time="year", treatment="d")


def test_fully_dynamic_twfe_without_never_treated_is_collinear(mpdta):
    treated = mpdta[mpdta["first.treat"] > 0]
    with pytest.raises(CollinearityError, match="Without never-treated teams"):
        event_study(treated, outcome="lemp", entity="countyreal", time="year", onset="first.treat")


def test_other_bad_input(mpdta):
    kw = {"outcome": "lemp", "entity": "countyreal", "time": "year"}
    with pytest.raises(CohortNotConstantError, match="'year' changes within countyreal"):
        event_study(mpdta, onset="year", **kw)
    with pytest.raises(TreatmentError, match="must be 0/1"):
        event_study(mpdta, treatment="lpop", **kw)
    with pytest.raises(SpecificationError, match="exactly one of"):
        event_study(mpdta, treatment="treat", onset="first.treat", **kw)
    with pytest.raises(SpecificationError, match="method='sunab'"):
        event_study(mpdta, onset="first.treat", never=0, method="sunab", **kw)
    with pytest.raises(SpecificationError, match="needs a binary onset"):
        event_study(mpdta, share="lpop", leads=1, lags=1, method="sun-abraham", **kw)
    with pytest.raises(SpecificationError, match="coarser group"):
        event_study(mpdta.assign(c=mpdta["year"]), onset="first.treat", never=0, cov="wild", cluster="c", **kw)


def test_plot_event_study(mpdta):
    from causalcts.plots.event_plots import plot_event_study

    res = event_study(mpdta, outcome="lemp", entity="countyreal", time="year", onset="first.treat", never=0)
    ax = plot_event_study(res)
    points = next(line for line in ax.lines if line.get_marker() == "o")
    assert list(points.get_xdata()) == [-4, -3, -2, -1, 0, 1, 2, 3]  # the reference is drawn at zero
    assert points.get_ydata()[3] == 0.0
    with pytest.raises(Exception, match='cov="wild"'):
        plot_event_study(res, intervals="wild")
