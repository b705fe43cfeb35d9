"""The panel data layer: validation catalogue, gap-aware lag operators, no mutation."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causalcts import Panel
from causalcts.data.panel import check_full_rank
from causalcts.errors import (
    CausalCTSError,
    CollinearityError,
    DataFileError,
    DataWarning,
    DuplicateKeyError,
    EmptyPanelError,
    MissingColumnError,
    MissingValueError,
    NonNumericError,
    RangeError,
    TooFewPeriodsError,
)


def telemetry(n_teams=3, n_weeks=4):
    rows = []
    for t in range(n_teams):
        for w in range(n_weeks):
            rows.append(
                dict(
                    team=f"t{t}",
                    week=w,
                    developers=5 + t,
                    crs_merged=7 + w,
                    deployments=4 + t + w,
                    rollbacks=1,
                    interventions=2,
                    pages=3,
                    oncall_builders=1,
                    ai_share=0.1 * w,
                    dev_cost=20000.0,
                )
            )
    return pd.DataFrame(rows)


def test_all_errors_are_value_errors():
    assert issubclass(CausalCTSError, ValueError)
    for cls in (
        MissingColumnError,
        DuplicateKeyError,
        NonNumericError,
        MissingValueError,
        RangeError,
        EmptyPanelError,
        TooFewPeriodsError,
        CollinearityError,
    ):
        assert issubclass(cls, CausalCTSError)


def test_valid_panel_is_sorted_and_described():
    df = telemetry().sample(frac=1.0, random_state=0)
    p = Panel(df)
    assert p.n_entities == 3 and p.n_periods == 4 and p.nobs == 12
    assert p.is_balanced and not p.has_gaps
    assert list(p.data["team"]) == sorted(df["team"])
    assert "3 team x 4 week" in repr(p)


def test_caller_frame_is_never_mutated():
    df = telemetry()
    df["deployments"] = df["deployments"].astype(object)
    df.loc[2, "deployments"] = "7"  # numeric string gets coerced in the copy only
    before = df.copy(deep=True)
    Panel(df)
    pd.testing.assert_frame_equal(df, before)


@pytest.mark.parametrize("col", ["team", "week"])
def test_missing_key_column_is_named(col):
    with pytest.raises(MissingColumnError, match=repr(col)):
        Panel(telemetry().drop(columns=col))


def test_missing_requested_column_is_named():
    with pytest.raises(MissingColumnError, match="velocity"):
        Panel(telemetry(), columns=["velocity"])


def test_duplicate_pairs_name_the_key_and_rows():
    df = pd.concat([telemetry(), telemetry().iloc[[5]]], ignore_index=True)
    with pytest.raises(DuplicateKeyError, match=r"\('t1', 1\)") as err:
        Panel(df)
    assert "rows 5, 12" in str(err.value)


def test_non_numeric_values_are_reported_with_rows():
    df = telemetry()
    df["crs_merged"] = df["crs_merged"].astype(object)
    df.loc[3, "crs_merged"] = "lots"
    with pytest.raises(NonNumericError, match=r"'crs_merged'.*'lots'.*row 3"):
        Panel(df)


def test_nan_is_an_error_by_default():
    df = telemetry()
    df.loc[4, "deployments"] = np.nan
    with pytest.raises(MissingValueError, match=r"'deployments'.*row 4"):
        Panel(df)


def test_infinity_is_an_error():
    df = telemetry()
    df.loc[1, "dev_cost"] = np.inf
    with pytest.raises(MissingValueError, match="dev_cost"):
        Panel(df)


def test_nan_dropped_only_on_opt_in_with_counting_warning():
    df = telemetry()
    df.loc[[1, 6], "deployments"] = np.nan
    with pytest.warns(DataWarning, match=r"Dropped 2 of 12 rows.*2 in 'deployments'"):
        p = Panel(df, dropna=True)
    assert p.nobs == 10


def test_nan_in_unused_column_is_ignored():
    df = telemetry()
    df["notes"] = None
    assert Panel(df).nobs == 12


def test_share_outside_unit_interval():
    df = telemetry()
    df.loc[7, "ai_share"] = 1.2
    with pytest.raises(RangeError, match=r"'ai_share'.*\[0, 1\].*row 7"):
        Panel(df)


@pytest.mark.parametrize("col", ["developers", "rollbacks", "pages", "dev_cost"])
def test_negative_counts(col):
    df = telemetry()
    df.loc[0, col] = -1
    with pytest.raises(RangeError, match=repr(col)):
        Panel(df)


def test_empty_frame():
    with pytest.raises(EmptyPanelError, match="no rows"):
        Panel(telemetry().iloc[0:0])


def test_single_team():
    with pytest.raises(EmptyPanelError, match="at least 2"):
        Panel(telemetry(n_teams=1))


def test_too_few_periods_for_lags():
    p = Panel(telemetry(n_weeks=2))
    with pytest.raises(TooFewPeriodsError, match="at least 4 periods"):
        p.require_periods(4)


def test_constant_regressor_is_named():
    X = pd.DataFrame({"a": [1.0, 2, 3, 4], "c": [3.0, 3, 3, 3]})
    check_full_rank(X[["a"]])
    with pytest.raises(CollinearityError, match="'c' is constant"):
        check_full_rank(pd.DataFrame({"one": 1.0, **X}))
    with pytest.raises(CollinearityError, match="zero in every row"):
        check_full_rank(pd.DataFrame({"a": [1.0, 2, 3], "z": [0.0, 0, 0]}))


def test_collinear_regressor_is_named():
    X = pd.DataFrame({"a": [1.0, 2, 3, 5], "b": [0.0, 1, 0, 1]})
    X["c"] = 2 * X["a"] - X["b"]
    with pytest.raises(CollinearityError, match="'c'.*\\['a', 'b'\\]"):
        check_full_rank(X)


def test_non_integer_time_is_rejected():
    df = telemetry()
    df["week"] = df["week"] + 0.5
    with pytest.raises(NonNumericError, match="whole numbers"):
        Panel(df)


def test_dates_map_to_weekly_periods_with_gaps():
    df = telemetry(n_teams=2, n_weeks=4)
    df["week"] = pd.Timestamp("2025-01-06") + pd.to_timedelta(df["week"] * 7, unit="D")
    df = df.drop(index=[2]).reset_index(drop=True)  # team t0 misses its third week
    p = Panel(df)
    assert p.has_gaps
    assert p.step == pd.Timedelta(days=7)
    lag = p.lag("crs_merged").to_numpy()
    assert np.isnan(lag[0]) and lag[1] == 7 and np.isnan(lag[2])


def test_file_inputs(tmp_path):
    df = telemetry()
    df.to_csv(tmp_path / "p.csv", index=False)
    df.to_parquet(tmp_path / "p.parquet")
    assert Panel.from_csv(tmp_path / "p.csv").nobs == 12
    assert Panel(tmp_path / "p.parquet").nobs == 12
    with pytest.raises(DataFileError, match="No such file"):
        Panel(tmp_path / "absent.csv")
    with pytest.raises(DataFileError, match="csv or .parquet"):
        Panel(tmp_path / "p.txt")


def test_lag_lead_diff_respect_gaps():
    df = pd.DataFrame({"team": [1, 1, 1, 1, 2, 2], "week": [1, 2, 4, 5, 1, 3], "x": [1.0, 2, 4, 5, 10, 30]})
    p = Panel(df, columns=["x"])
    np.testing.assert_array_equal(p.lag("x").to_numpy(), [np.nan, 1, np.nan, 4, np.nan, np.nan])
    np.testing.assert_array_equal(p.lag("x", 2).to_numpy(), [np.nan, np.nan, 2, np.nan, np.nan, 10])
    np.testing.assert_array_equal(p.lead("x").to_numpy(), [2, np.nan, 5, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(p.diff("x").to_numpy(), [np.nan, 1, np.nan, 1, np.nan, np.nan])
    assert list(p.lags("x", [0, 1]).columns) == ["x", "L1.x"]


def test_lag_never_crosses_entities():
    # team 2's first week minus 3 would land on team 1's last keys if keys were not checked
    df = pd.DataFrame({"team": [1] * 5 + [2] * 5, "week": list(range(5)) * 2, "x": np.arange(10.0)})
    p = Panel(df, columns=["x"])
    for k in range(1, 6):
        lag = p.lag("x", k).to_numpy()
        assert np.all(np.isnan(lag[5 : 5 + k])) and np.all(np.isnan(lag[:k]))


def test_per_builder_normalisation_and_zero_denominator():
    p = Panel(telemetry())
    v = p.per_builder("crs_merged")
    np.testing.assert_allclose(v, p.data["crs_merged"] / p.data["developers"])
    df = telemetry()
    df.loc[3, "developers"] = 0
    with pytest.raises(RangeError, match="'developers' is zero"):
        Panel(df).per_builder("crs_merged")


@st.composite
def gappy_panels(draw):
    n_teams = draw(st.integers(1, 4))
    rows = []
    for t in range(n_teams):
        weeks = draw(st.lists(st.integers(0, 15), min_size=1, max_size=12, unique=True))
        for w in weeks:
            rows.append((t, w, draw(st.floats(-100, 100, allow_nan=False))))
    return pd.DataFrame(rows, columns=["team", "week", "x"])


@settings(max_examples=60, deadline=None)
@given(gappy_panels(), st.integers(-3, 4))
def test_lag_matches_definition_on_gappy_panels(df, k):
    """Property: lag k equals the value at (team, week - k) when that row exists, else NaN."""
    p = Panel(df, columns=["x"], min_entities=1)
    got = p.lag("x", k).to_numpy()
    lookup = {(t, w): x for t, w, x in df.itertuples(index=False)}
    data = p.data
    expected = [lookup.get((t, w - k), np.nan) for t, w in zip(data["team"], data["week"])]
    np.testing.assert_array_equal(got, np.array(expected, dtype=float))


@settings(max_examples=40, deadline=None)
@given(gappy_panels())
def test_diff_is_value_minus_lag(df):
    p = Panel(df, columns=["x"], min_entities=1)
    np.testing.assert_array_equal(p.diff("x").to_numpy(), p.data["x"].to_numpy() - p.lag("x").to_numpy())
