"""Callaway-Sant'Anna ATT(g,t) (causalcts.did.att_gt) against R's did on mpdta.

Sources of the numbers:

* ``tests/data/did_r_ref_attgt.csv``, ``did_r_ref_aggte.csv``, ``did_r_ref_pretest.csv``: R package did
  2.5.1 (with DRDID), written by ``csdid/test_csdid/r_ref/generate_reference.R`` of the csdid repository
  (github.com/d2cml-ai/csdid, commit ca91c1fef4974bde0d973d7f4195328414130c92, MIT licence). The R calls are
  ``att_gt(yname="lemp", tname="year", idname="countyreal", gname="first.treat", xformla=~1 (or ~lpop),
  data=mpdta, control_group=..., est_method=..., bstrap=FALSE, cband=FALSE)`` and
  ``aggte(out, type=..., bstrap=FALSE)``; scenarios mpdta_nev_dr, mpdta_nyt_dr, mpdta_nev_reg_cov (~lpop),
  mpdta_nev_ipw. Values are printed with 15 significant digits.
* did's README (github.com/bcallaway11/did, version 2.5.1): ATT(2004,2004) = -0.0105, dynamic overall
  -0.0772, group overall -0.031 (printed digits).
* Configurations without an R file (dr and ipw with ~lpop, not-yet-treated with ~lpop, anticipation = 1) are
  checked against csdid 0.4.3 (``ATTgt(...).fit(est_method=..., bstrap=False)``, a port of did); the universal
  base period against moderndid 0.2.0 (``att_gt(..., base_period="universal", boot=False)``), since csdid
  0.4.3 ignores ``base_period``. Both are test-only oracles.
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalcts.did.att_gt import ATTgtResults, att_gt
from causalcts.did.cohorts import onset_cohort
from causalcts.errors import CausalCTSError, CohortNotConstantError, DataWarning, NoControlGroupError

DATA = Path(__file__).parent / "data"
MPDTA = pd.read_csv(DATA / "mpdta.csv")
REF_ATT = pd.read_csv(DATA / "did_r_ref_attgt.csv")
REF_AGG = pd.read_csv(DATA / "did_r_ref_aggte.csv")
REF_W = pd.read_csv(DATA / "did_r_ref_pretest.csv")
KEYS = dict(outcome="lemp", entity="countyreal", time="year", cohort="first.treat")
SCENARIOS = {
    "mpdta_nev_dr": dict(control="never", est="dr"),
    "mpdta_nyt_dr": dict(control="notyet", est="dr"),
    "mpdta_nev_reg_cov": dict(control="never", est="reg", covariates=["lpop"]),
    "mpdta_nev_ipw": dict(control="never", est="ipw"),
}
# R prints 15 significant digits and we measured agreement to ~3e-15; 1e-9 is the contract's tolerance.
TOL = 1e-9


@pytest.fixture(scope="module")
def fits():
    return {name: att_gt(MPDTA, **KEYS, **kw) for name, kw in SCENARIOS.items()}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_att_gt_matches_r(fits, scenario):
    res, ref = fits[scenario], REF_ATT[REF_ATT["scenario"] == scenario]
    tab = res.att
    np.testing.assert_array_equal(tab["cohort"], ref["group"])
    np.testing.assert_array_equal(tab["time"], ref["t"])
    np.testing.assert_allclose(tab["att"], ref["att"], rtol=0, atol=TOL)
    np.testing.assert_allclose(tab["std_error"], ref["se"], rtol=0, atol=TOL)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("kind", ["simple", "group", "dynamic", "calendar"])
def test_aggregations_match_r(fits, scenario, kind):
    agg = fits[scenario].aggregate(kind)
    ref = REF_AGG[(REF_AGG["scenario"] == scenario) & (REF_AGG["type"] == kind)]
    assert agg.estimate == pytest.approx(ref["overall_att"].iloc[0], abs=TOL)
    assert agg.std_error == pytest.approx(ref["overall_se"].iloc[0], abs=TOL)
    if kind != "simple":
        np.testing.assert_array_equal(agg.table.index.to_numpy(dtype=float), ref["egt"].to_numpy(dtype=float))
        np.testing.assert_allclose(agg.table["att"], ref["att_egt"], rtol=0, atol=TOL)
        np.testing.assert_allclose(agg.table["std_error"], ref["se_egt"], rtol=0, atol=TOL)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_pretrend_wald_matches_r(fits, scenario):
    wald = fits[scenario].tests["pretrend_wald"]
    ref = REF_W[REF_W["scenario"] == scenario].iloc[0]
    assert wald["statistic"] == pytest.approx(ref["W"], rel=1e-9)  # R: 15 significant digits
    assert wald["df"] == 5
    assert wald["pvalue"] == pytest.approx(ref["Wpval"], abs=5e-6)  # R rounds the p-value to 5 decimals


def test_readme_printed_digits(fits):
    """did README: ATT(2004,2004) -0.0105, dynamic overall -0.0772, group overall -0.031, pre-test p 0.16812."""
    res = fits["mpdta_nev_dr"]
    assert round(res.params["ATT(2004,2004)"], 4) == -0.0105
    assert round(res.aggregate("dynamic").estimate, 4) == -0.0772
    assert round(res.aggregate("group").estimate, 3) == -0.031
    assert round(res.tests["pretrend_wald"]["pvalue"], 5) == 0.16812


CSDID_CASES = [
    (dict(est="dr", covariates=["lpop"]), dict(xformla="lemp~lpop"), "dr"),
    (dict(est="ipw", covariates=["lpop"]), dict(xformla="lemp~lpop"), "ipw"),
    (
        dict(est="dr", covariates=["lpop"], control="notyet"),
        dict(xformla="lemp~lpop", control_group="notyettreated"),
        "dr",
    ),
    (
        dict(est="dr", anticipation=1, control="notyet"),
        dict(xformla="lemp~1", anticipation=1, control_group="notyettreated"),
        "dr",
    ),
]


@pytest.mark.parametrize(
    "ours,theirs,method", CSDID_CASES, ids=["dr_lpop", "ipw_lpop", "notyet_dr_lpop", "anticipation1"]
)
def test_matches_csdid_where_r_file_has_none(ours, theirs, method):
    from csdid.att_gt import ATTgt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # csdid's own messages (anticipation note)
        other = ATTgt(yname="lemp", tname="year", idname="countyreal", gname="first.treat", data=MPDTA.copy(), **theirs)
        out = other.fit(est_method=method, bstrap=False).results
    if ours.get("anticipation"):
        # cohort 2004 is treated (with anticipation) from 2003, the first period: dropped, as R does
        with pytest.warns(DataWarning, match="Dropped 20 countyreal"):
            tab = att_gt(MPDTA, **KEYS, **ours).att
    else:
        tab = att_gt(MPDTA, **KEYS, **ours).att
    np.testing.assert_array_equal(tab["cohort"], np.asarray(out["group"], dtype=float))
    np.testing.assert_array_equal(tab["time"], np.asarray(out["year"], dtype=float))
    # measured agreement 4e-13 (logit Newton steps differ); 1e-9 as for R
    np.testing.assert_allclose(tab["att"], np.asarray(out["att"]), rtol=0, atol=TOL)
    np.testing.assert_allclose(tab["std_error"], np.asarray(out["se"]), rtol=0, atol=TOL)


def test_universal_base_period_matches_moderndid():
    import moderndid

    res = att_gt(MPDTA, **KEYS, base_period="universal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = moderndid.att_gt(
            data=MPDTA,
            yname="lemp",
            tname="year",
            idname="countyreal",
            gname="first.treat",
            base_period="universal",
            boot=False,
            cband=False,
        )
    tab = res.att
    np.testing.assert_allclose(tab["att"], np.asarray(other.att_gt), rtol=0, atol=TOL)
    np.testing.assert_allclose(tab["std_error"], np.asarray(other.se_gt), rtol=0, atol=TOL, equal_nan=True)
    # the reference cell g - 1 is 0 by construction and has no standard error (R reports NA)
    assert res.params["ATT(2006,2005)"] == 0 and np.isnan(res.std_errors["ATT(2006,2005)"])
    # a pre-period cell with a universal base is minus the sum of the varying-base steps up to g - 1
    varying = att_gt(MPDTA, **KEYS).params
    assert res.params["ATT(2007,2004)"] == pytest.approx(
        -(varying["ATT(2007,2005)"] + varying["ATT(2007,2006)"]), abs=1e-12
    )
    for kind in ("simple", "group", "dynamic", "calendar"):
        ours, theirs = res.aggregate(kind), moderndid.aggte(other, type=kind, boot=False, cband=False)
        assert ours.estimate == pytest.approx(theirs.overall_att, abs=TOL)
        assert ours.std_error == pytest.approx(theirs.overall_se, abs=TOL)


def test_results_contract(fits):
    res = fits["mpdta_nev_dr"]
    assert isinstance(res, ATTgtResults)
    assert list(res.params.index[:2]) == ["ATT(2004,2004)", "ATT(2004,2005)"]
    assert res.n_entities == 500 and res.nobs == 2500
    # cov comes from the influence functions and its diagonal gives the standard errors
    np.testing.assert_allclose(np.sqrt(np.diag(res.cov)), res.std_errors, rtol=1e-12)
    assert res.spec["control"] == "never" and res.spec["est"] == "dr"
    p = res.params
    p.iloc[0] = 99.0
    assert res.params.iloc[0] != 99.0  # results hand out copies
    with pytest.raises(ValueError):
        res.influence[0, 0] = 1.0
    ci = res.conf_int(0.9)
    assert (ci["lower"] < res.params).all()


def test_caller_data_not_mutated():
    df = MPDTA.copy()
    att_gt(df, **KEYS, control="notyet", covariates=["lpop"])
    pd.testing.assert_frame_equal(df, MPDTA)


# ------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_seeded_and_bit_identical(fits):
    res = fits["mpdta_nev_dr"]
    a = res.bootstrap(499, seed=7)
    b = res.bootstrap(499, seed=7)
    c = res.bootstrap(499, seed=8)
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    assert a.crit_value == b.crit_value
    assert not a.table["std_error"].equals(c.table["std_error"])
    z = 1.959963984540054
    # a uniform band is wider than the pointwise interval, and R's did warns above 7 (unreliable)
    assert z < a.crit_value < 7
    # the IQR-based bootstrap SE estimates the analytic SE; its Monte Carlo relative error with B = 499 is
    # about 1.17 / sqrt(499) = 5%, so 25% is five of those
    np.testing.assert_allclose(a.table["std_error"], res.std_errors, rtol=0.25)


def test_bootstrap_rademacher_and_aggregate_bands(fits):
    res = fits["mpdta_nev_dr"]
    rad = res.bootstrap(299, seed=1, weights="rademacher")
    assert np.isfinite(rad.table["std_error"]).all()
    dyn = res.aggregate("dynamic")
    bands = dyn.bootstrap(299, seed=3)
    assert list(bands.table.index) == list(dyn.table.index)
    assert (bands.table["upper"] - bands.table["lower"] > dyn.table["upper"] - dyn.table["lower"]).all()
    # overall SE from the same draws: within 30% (six Monte Carlo SEs at B = 299) of the analytic one
    assert bands.overall_std_error == pytest.approx(dyn.std_error, rel=0.3)
    pd.testing.assert_frame_equal(bands.table, dyn.bootstrap(299, seed=3).table, check_exact=True)
    with pytest.raises(CausalCTSError, match="weights"):
        res.bootstrap(99, seed=1, weights="normal")


# ------------------------------------------------------------------------------------- bad input
def test_no_never_treated_for_never_control():
    df = MPDTA[MPDTA["first.treat"] != 0]
    with pytest.raises(NoControlGroupError, match="first.treat"):
        att_gt(df, **KEYS, control="never")
    # not-yet-treated comparisons still work: the last cohort is kept as a comparison only
    with pytest.warns(DataWarning, match="No never-treated"):
        res = att_gt(df, **KEYS, control="notyet")
    assert set(res.att["cohort"]) == {2004.0, 2006.0}


def test_cohort_not_constant_within_team():
    df = MPDTA.copy()
    df.loc[(df["countyreal"] == 8001) & (df["year"] == 2005), "first.treat"] = 2006
    with pytest.raises(CohortNotConstantError, match=r"first\.treat.*8001"):
        att_gt(df, **KEYS)


def test_unbalanced_team_is_dropped_with_warning():
    df = MPDTA.drop(index=MPDTA.index[3])
    with pytest.warns(DataWarning, match="Dropped 1 countyreal"):
        res = att_gt(df, **KEYS)
    assert res.n_entities == 499


def test_bad_options_name_the_option():
    with pytest.raises(CausalCTSError, match="control"):
        att_gt(MPDTA, **KEYS, control="nevertreated")
    with pytest.raises(CausalCTSError, match="est"):
        att_gt(MPDTA, **KEYS, est="ols")
    with pytest.raises(CausalCTSError, match="lpopx"):
        att_gt(MPDTA, **KEYS, covariates=["lpopx"])


def _dated_mpdta(text=False):
    """mpdta with years as dates (1 January) and first.treat as dates, NaT for never treated."""
    to_date = lambda v: pd.Timestamp(f"{int(v)}-01-01") if v > 0 else pd.NaT  # noqa: E731
    df = MPDTA.assign(year=MPDTA["year"].map(to_date), **{"first.treat": MPDTA["first.treat"].map(to_date)})
    if text:
        df["year"] = df["year"].dt.strftime("%Y-%m-%d").astype(object)
        df["first.treat"] = df["first.treat"].dt.strftime("%Y-%m-%d").astype(object)
    return df


@pytest.mark.parametrize("text", [False, True], ids=["datetime", "iso-text"])
def test_date_time_and_cohorts_equal_integer_periods(text):
    """Dates (or ISO text from a CSV) map to periods 1, 2, ... through Panel (regression test: NonNumericError)."""
    df = _dated_mpdta(text)
    before = df.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = att_gt(df, **KEYS)
    pd.testing.assert_frame_equal(df, before)
    ref = att_gt(MPDTA, **KEYS)
    np.testing.assert_allclose(res.params.to_numpy(), ref.params.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(res.std_errors.to_numpy(), ref.std_errors.to_numpy(), rtol=1e-12)
    assert res.params.index[0] == "ATT(2,2)" and ref.params.index[0] == "ATT(2004,2004)"
    assert res.info["periods"] == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert res.info["period_dates"] == ("2003-01-01", "2004-01-01", "2005-01-01", "2006-01-01", "2007-01-01")
    assert res.aggregate("dynamic").estimate == pytest.approx(ref.aggregate("dynamic").estimate, rel=1e-12)


def test_date_cohorts_with_zero_for_never_and_onset_cohort_output():
    df = _dated_mpdta()
    ref = att_gt(MPDTA, **KEYS)
    zero = df.assign(**{"first.treat": df["first.treat"].astype(object).where(df["first.treat"].notna(), 0)})
    np.testing.assert_allclose(att_gt(zero, **KEYS).params.to_numpy(), ref.params.to_numpy(), rtol=1e-12)
    # onset_cohort's date cohorts (NaT for never treated) go straight in
    df["share"] = (df["year"] >= df["first.treat"]).astype(float)
    coh = onset_cohort(df, entity="countyreal", time="year", share="share")
    merged = df.merge(coh, left_on="countyreal", right_index=True)
    res = att_gt(merged, **{**KEYS, "cohort": "cohort"})
    np.testing.assert_allclose(res.params.to_numpy(), ref.params.to_numpy(), rtol=1e-12)


def test_cohorts_in_other_units_than_the_time_column_are_refused():
    df = _dated_mpdta()
    with pytest.raises(CausalCTSError, match=r"'first.treat' must hold onset dates.*\[2004, 2006, 2007\].*to_datetime"):
        att_gt(df.assign(**{"first.treat": MPDTA["first.treat"]}), **KEYS)
    with pytest.raises(CausalCTSError, match="'first.treat' must hold onset dates.*'soon'"):
        att_gt(df.assign(**{"first.treat": df["first.treat"].astype(object).where(df.index > 0, "soon")}), **KEYS)
    with pytest.raises(CausalCTSError, match="'first.treat' holds dates, but the time column 'year' holds numbers"):
        att_gt(MPDTA.assign(**{"first.treat": df["first.treat"]}), **KEYS)


# ------------------------------------------------------------------------------------- cohorts
def test_onset_cohort_recovers_mpdta_cohorts():
    df = MPDTA.copy()
    g = df["first.treat"]
    df["share"] = np.where((g > 0) & (df["year"] >= g), 0.8, 0.2)
    cohorts = onset_cohort(df, entity="countyreal", time="year", share="share", threshold=0.5)
    truth = df.groupby("countyreal")["first.treat"].first()
    pd.testing.assert_series_equal(cohorts, truth.rename("cohort"), check_dtype=False)
    assert cohorts.attrs["threshold"] == 0.5 and cohorts.attrs["never_treated"] == 0
    # with a threshold above every share, nobody is ever treated
    assert (onset_cohort(df, entity="countyreal", time="year", share="share", threshold=0.9) == 0).all()


def test_onset_cohort_is_absorbing_and_warns_on_missing():
    df = pd.DataFrame({"team": [1, 1, 1, 2, 2, 2], "week": [1, 2, 3] * 2, "s": [0.0, 0.7, 0.1, np.nan, 0.2, 0.5]})
    with pytest.warns(DataWarning, match="1 rows"):
        c = onset_cohort(df, entity="team", time="week", share="s")
    assert c.to_dict() == {1: 2, 2: 3}
