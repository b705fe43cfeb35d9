"""onset_cohort (causalcts.did.cohorts): validation like Panel's, and date cohorts with NaT for never treated."""

import warnings

import numpy as np
import pandas as pd
import pytest

from causalcts.did.cohorts import onset_cohort
from causalcts.errors import DuplicateKeyError, MissingValueError, NonNumericError, RangeError


def _rollout():
    """Team a reaches 0.5 in week 2 (and falls back), b in week 3, c never."""
    return pd.DataFrame(
        {
            "team": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "week": [1, 2, 3] * 3,
            "ai_share": [0.1, 0.6, 0.4, 0.0, 0.2, 0.5, 0.0, 0.1, 0.3],
        }
    )


def test_integer_weeks_keep_zero_for_never_treated():
    c = onset_cohort(_rollout(), entity="team", time="week", share="ai_share")
    assert c.to_dict() == {"a": 2, "b": 3, "c": 0} and c.dtype == np.int64
    assert c.attrs == {"threshold": 0.5, "share": "ai_share", "never_treated": 0}


@pytest.mark.parametrize("text", [False, True], ids=["datetime", "iso-text"])
def test_dates_give_date_cohorts_with_nat_and_no_warning(text):
    """Regression test: dates gave an object Series mixing 0 and Timestamps, with a pandas fill-value warning."""
    df = _rollout()
    weeks = pd.Series(pd.to_datetime(["2025-01-06", "2025-01-13", "2025-01-20"] * 3))
    df["week"] = weeks.dt.strftime("%Y-%m-%d").astype(object) if text else weeks
    before = df.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = onset_cohort(df, entity="team", time="week", share="ai_share")
    pd.testing.assert_frame_equal(df, before)
    assert c.dtype == "datetime64[ns]" and c.name == "cohort"
    assert c.tolist()[:2] == [pd.Timestamp("2025-01-13"), pd.Timestamp("2025-01-20")] and pd.isna(c["c"])
    assert c.attrs["never_treated"] is pd.NaT


def test_share_outside_the_unit_interval_names_the_rows():
    """Regression test: a share of 1.5 was accepted silently."""
    df = _rollout()
    df.loc[4, "ai_share"] = 1.5
    with pytest.raises(RangeError, match=r"'ai_share' is a share and must lie in \[0, 1\]; row 4 hold \[1.5\]"):
        onset_cohort(df, entity="team", time="week", share="ai_share")
    df.loc[4, "ai_share"] = -0.1
    with pytest.raises(RangeError, match="row 4"):
        onset_cohort(df, entity="team", time="week", share="ai_share")


def test_duplicated_team_weeks_are_refused():
    """Regression test: a duplicated team-week was accepted silently."""
    df = _rollout()
    dup = pd.concat([df, df.iloc[[4]]], ignore_index=True)
    with pytest.raises(DuplicateKeyError, match=r"\('b', 2\).*rows 4, 9"):
        onset_cohort(dup, entity="team", time="week", share="ai_share")


def test_other_bad_input_names_the_column():
    df = _rollout()
    with pytest.raises(NonNumericError, match="'ai_share' must be numeric; row 2 hold \\['lots'\\]"):
        onset_cohort(df.assign(ai_share=df["ai_share"].astype(object).where(df.index != 2, "lots")),
                     entity="team", time="week", share="ai_share")  # fmt: skip
    with pytest.raises(MissingValueError, match="'ai_share' is missing in every row"):
        onset_cohort(df.assign(ai_share=np.nan), entity="team", time="week", share="ai_share")
    with pytest.raises(NonNumericError, match="Time column 'week'"):
        onset_cohort(df.assign(week=["w1", "w2", "w3"] * 3), entity="team", time="week", share="ai_share")
