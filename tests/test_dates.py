"""Time columns: integer periods anywhere on the number line, dates of every common frequency,
and the inputs Panel accepts (lists of dicts, dicts of lists) with clear errors for the rest."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import causalcts
from causalcts import Panel, datasets
from causalcts.errors import DataFileError, DuplicateKeyError, IrregularTimeError, MissingValueError, SpecificationError

ABDATA = datasets.load("abdata")
AB_FORMULA = "n ~ L(n, 1:2) + L(w, 0:1) + L(k, 0:2) + L(ys, 0:2)"
FITS = {
    "within": dict(time_effects=True),
    "diff-gmm": dict(time_effects=True, gmm={"n": (2, None)}, steps=1, cov="robust"),
}


# ---------------------------------------------------------------- integer periods <= 0
@pytest.fixture(scope="module")
def ab_fits():
    return {m: causalcts.fit(AB_FORMULA, ABDATA, entity="id", time="year", method=m, **kw) for m, kw in FITS.items()}


@pytest.mark.parametrize("shift", [-1980, -2000])  # years 1976-1984 become -4..4 (straddle 0) and -24..-16
@pytest.mark.parametrize("method", list(FITS))
def test_shifted_years_give_the_same_fit(ab_fits, method, shift):
    """Shifting the time column changes no lag, so every estimate must be the same."""
    shifted = ABDATA.assign(year=ABDATA["year"] + shift)
    res = causalcts.fit(AB_FORMULA, shifted, entity="id", time="year", method=method, **FITS[method])
    base = ab_fits[method]
    assert res.nobs == base.nobs  # 751 within, 611 diff-gmm (the row counts of the reference tests)
    # 1e-12: the same rows and the same arithmetic; only the period labels (time dummies) differ
    np.testing.assert_allclose(res.params.to_numpy(), base.params.to_numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.std_errors.to_numpy(), base.std_errors.to_numpy(), rtol=1e-12, atol=1e-12)


def test_all_negative_periods_have_lags():
    df = pd.DataFrame({"team": ["a"] * 3 + ["b"] * 3, "week": [-3, -2, -1] * 2, "x": [1.0, 2, 3, 4, 5, 6]})
    p = Panel(df, columns=["x"])
    p.require_periods(3)
    np.testing.assert_array_equal(p.lag("x").to_numpy(), [np.nan, 1, 2, np.nan, 4, 5])
    np.testing.assert_array_equal(p.periods, [-3, -2, -1, -3, -2, -1])  # integers are kept as given


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=8, unique=True), min_size=1, max_size=3),
    st.integers(-60, 60),
    st.integers(-3, 3),
)
def test_lags_do_not_depend_on_where_periods_start(weeks_per_team, offset, k):
    rows = [(t, w, float(10 * t + w)) for t, weeks in enumerate(weeks_per_team) for w in weeks]
    df = pd.DataFrame(rows, columns=["team", "week", "x"])
    base = Panel(df, columns=["x"], min_entities=1).lag("x", k).to_numpy()
    moved = Panel(df.assign(week=df["week"] + offset), columns=["x"], min_entities=1).lag("x", k).to_numpy()
    np.testing.assert_array_equal(moved, base)


# ---------------------------------------------------------------- dates
def two_teams(times):
    times = list(times)
    return pd.DataFrame(
        {"team": ["a"] * len(times) + ["b"] * len(times), "week": times * 2, "x": np.arange(2.0 * len(times))}
    )


@pytest.mark.parametrize(
    "times,freq",
    [
        (pd.date_range("2025-01-06", periods=4, freq="7D", tz="Europe/Berlin"), "W-MON"),  # Mondays, tz-aware
        (pd.date_range("2025-01-06", periods=4, freq="7D", tz="UTC"), "W-MON"),
        (pd.date_range("2025-01-01", periods=4, freq="MS"), "M"),
        (pd.date_range("2025-01-31", periods=4, freq="ME"), "M"),  # 28 to 31 days apart
        (pd.date_range("2024-12-31", periods=4, freq="QE"), "Q-DEC"),
        (pd.date_range("2020-01-01", periods=4, freq="YS"), "Y-DEC"),
        (pd.date_range("2025-01-01", periods=4, freq="D"), "D"),
        ([f"2025-0{m}-01" for m in range(1, 5)], "M"),  # ISO text from a CSV export
        (["2025-01-06", "2025-01-13", "2025-01-20", "2025-01-27"], "W-MON"),
        (["2025-01-08", "2025-01-15", "2025-01-22", "2025-01-29"], "W-WED"),
    ],
)
def test_date_frequencies_are_inferred_and_lag_by_one_period(times, freq):
    p = Panel(two_teams(times), columns=["x"])
    assert p.freq == freq
    np.testing.assert_array_equal(p.lag("x").to_numpy(), [np.nan, 0, 1, 2, np.nan, 4, 5, 6])
    np.testing.assert_array_equal(p.periods, [0, 1, 2, 3] * 2)


def test_monthly_gap_is_a_gap():
    p = Panel(two_teams(["2025-01-01", "2025-02-01", "2025-04-01"]), columns=["x"])
    np.testing.assert_array_equal(p.lag("x").to_numpy(), [np.nan, 0, np.nan, np.nan, 3, np.nan])
    np.testing.assert_array_equal(p.lag("x", 2).to_numpy(), [np.nan, np.nan, 1, np.nan, np.nan, 4])


def test_csv_round_trip_of_dates(tmp_path):
    df = two_teams(pd.date_range("2025-01-06", periods=3, freq="7D"))
    df.to_csv(tmp_path / "p.csv", index=False)
    p = Panel(tmp_path / "p.csv", columns=["x"])
    assert p.step == pd.Timedelta(days=7)
    np.testing.assert_array_equal(p.lag("x").to_numpy(), [np.nan, 0, 1, np.nan, 3, 4])


def test_irregular_dates_ask_for_freq_and_freq_fixes_them():
    # team a reports on Mondays, team b on Wednesdays of the same weeks
    df = pd.DataFrame(
        {
            "team": ["a"] * 3 + ["b"] * 3,
            "week": pd.to_datetime(
                ["2025-01-06", "2025-01-13", "2025-01-20", "2025-01-08", "2025-01-15", "2025-01-22"]
            ),
            "x": np.arange(6.0),
        }
    )
    with pytest.raises(IrregularTimeError, match="freq="):
        Panel(df, columns=["x"])
    p = Panel(df, columns=["x"], freq="W")
    np.testing.assert_array_equal(p.lag("x").to_numpy(), [np.nan, 0, 1, np.nan, 3, 4])


def weekly_teams(weekdays, weeks=30, seed=0):
    """One team per weekday offset (0 = Monday), ``weeks`` weekly dates each, ISO text as in a CSV."""
    rng = np.random.default_rng(seed)
    mondays = pd.date_range("2025-01-06", periods=weeks, freq="7D")
    frames = [
        pd.DataFrame(
            {
                "team": f"team-{i:02d}",
                "week": (mondays + pd.Timedelta(days=day)).strftime("%Y-%m-%d"),
                "y": rng.normal(size=weeks),
                "x": rng.normal(size=weeks),
            }
        )
        for i, day in enumerate(weekdays)
    ]
    return pd.concat(frames, ignore_index=True)


def test_teams_on_different_weekdays_are_an_error_not_daily_data():
    """Weekly teams on Mondays and one on Tuesdays used to become a daily panel with every lag missing."""
    df = weekly_teams([0, 1, 0, 0, 2])
    before = df.copy()
    with pytest.raises(IrregularTimeError) as err:
        Panel(df, columns=["y", "x"])
    msg = str(err.value)
    assert "'week'" in msg and "weekly within each team" in msg
    assert "3 of 5) on Monday" in msg
    assert "team-01 on Tuesday" in msg and "team-04 on Wednesday" in msg
    assert "team-00" not in msg and "freq='W'" in msg
    pd.testing.assert_frame_equal(df, before)  # the caller's data is untouched
    p = Panel(df, columns=["y", "x"], freq="W")  # calendar weeks: Monday and Tuesday share a week
    assert p.n_periods == 30 and p.is_balanced and not p.has_gaps
    res = causalcts.fit("y ~ L(y, 1) + x", p, method="within")
    assert res.nobs == 5 * 29


def test_many_odd_teams_are_listed_briefly():
    with pytest.raises(IrregularTimeError, match=r"on Monday, team-02, .* and 2 more on Thursday"):
        Panel(weekly_teams([0, 0] + [3] * 7 + [0] * 8, weeks=3), columns=["y"])


def test_teams_on_one_weekday_keep_the_weekly_step():
    df = weekly_teams([2, 2, 2], weeks=4)
    df = df.drop(index=[1, 6])  # gaps within teams: still weekly
    p = Panel(df, columns=["y"])
    assert p.step == pd.Timedelta(days=7) and p.freq == "W-WED"
    np.testing.assert_array_equal(p.periods, [0, 2, 3, 0, 1, 3, 0, 1, 2, 3])


def test_daily_panel_is_still_daily():
    days = pd.date_range("2025-01-06", periods=10, freq="D")
    df = pd.DataFrame({"team": ["a"] * 10 + ["b"] * 7, "week": list(days) + list(days[3:]), "x": np.arange(17.0)}).drop(
        index=[4, 5]
    )  # team a misses two days
    p = Panel(df, columns=["x"])
    assert p.freq == "D" and p.step == pd.Timedelta(days=1)
    assert p.lag("x").notna().sum() == 6 + 6  # team a: days 1-3 and 7-9; team b: 6 of 7 days


def test_inferred_weekly_anchor_is_the_weekday_and_maps_dates_like_given():
    """A 7-day step on Mondays is reported as W-MON (weeks ending Monday: each date ends its own week)."""
    df = two_teams(["2025-01-06", "2025-01-13", "2025-01-27"])
    p = Panel(df, columns=["x"])
    assert p.freq == "W-MON"
    q = Panel(df, columns=["x"], freq=p.freq)
    np.testing.assert_array_equal(q.periods, p.periods)
    np.testing.assert_array_equal(p.periods, [0, 1, 3] * 2)
    assert p.period_of(["2025-02-03"]).tolist() == [4]


def test_weekly_anchor_decides_which_days_share_a_week():
    df = two_teams(pd.to_datetime(["2025-01-12", "2025-01-13"]))  # a Sunday, then a Monday
    assert Panel(df, columns=["x"], freq="W-SUN").lag("x").tolist()[1] == 0  # Mon-Sun weeks: consecutive
    with pytest.raises(DuplicateKeyError, match="2025-01-12"):
        Panel(df, columns=["x"], freq="W-MON")  # Tue-Mon weeks: the same week


def test_bad_freq_is_named():
    df = two_teams(pd.date_range("2025-01-06", periods=2, freq="7D"))
    with pytest.raises(SpecificationError, match="freq='fortnight'"):
        Panel(df, columns=["x"], freq="fortnight")
    with pytest.raises(SpecificationError, match="holds numbers"):
        Panel(two_teams([1, 2]), columns=["x"], freq="W")


def test_missing_entity_or_time_is_an_error_even_with_dropna():
    df = two_teams(pd.date_range("2025-01-06", periods=3, freq="7D"))
    df.loc[4, "week"] = pd.NaT
    with pytest.raises(MissingValueError, match=r"'week'.*row 4.*dropna"):
        Panel(df, columns=["x"], dropna=True)
    ints = two_teams([1, 2, 3])
    ints.loc[2, "week"] = np.nan
    with pytest.raises(MissingValueError, match=r"'week'.*row 2"):
        Panel(ints, columns=["x"], dropna=True)
    ents = two_teams([1, 2, 3])
    ents.loc[5, "team"] = None
    with pytest.raises(MissingValueError, match=r"'team'.*row 5.*dropna"):
        Panel(ents, columns=["x"], dropna=True)


# ---------------------------------------------------------------- inputs
def test_list_of_dicts_and_dict_of_lists():
    rows = [{"team": t, "week": w, "x": float(w)} for t in "ab" for w in (1, 2)]
    p = Panel(rows, columns=["x"])
    q = Panel({"team": ["a", "a", "b", "b"], "week": [1, 2, 1, 2], "x": [1.0, 2.0, 1.0, 2.0]}, columns=["x"])
    pd.testing.assert_frame_equal(p.data, q.data)
    assert p.lag("x").tolist()[1] == 1.0


@pytest.mark.parametrize("bad", [42, [1, 2, 3], np.zeros((2, 2)), {"team": "a", "week": 1}])
def test_other_inputs_are_clear_errors(bad):
    with pytest.raises(DataFileError, match="Panel needs|Cannot turn"):
        Panel(bad)


def test_period_of_maps_times_like_the_panel():
    weekly = Panel(two_teams(pd.date_range("2025-01-06", periods=3, freq="7D", tz="UTC")), columns=["x"])
    np.testing.assert_array_equal(weekly.period_of(weekly.data["week"]), weekly.periods)
    assert weekly.period_of(["2025-02-03"]).tolist() == [4]  # four weeks after 6 January
    years = Panel(two_teams([-2, -1, 0]), columns=["x"])
    assert years.period_of([5]).tolist() == [5]
