"""CTS-SW and delivery metrics, and the capacity translation."""

import numpy as np
import pandas as pd
import pytest

from causalcts import Panel, metrics
from causalcts.errors import CausalCTSError, DataWarning, MissingColumnError, RangeError


@pytest.fixture
def week():
    return pd.DataFrame(
        {
            "team": ["a", "a", "b", "b"],
            "week": [1, 2, 1, 2],
            "developers": [8, 8, 4, 4],
            "crs_merged": [12, 16, 4, 6],
            "deployments": [10, 5, 2, 0],
            "rollbacks": [1, 1, 0, 0],
            "interventions": [2, 1, 1, 0],
            "pages": [3, 2, 4, 1],
            "oncall_builders": [2, 2, 1, 1],
            "dev_cost": [32000.0, 32000.0, 16000.0, 16000.0],
            "commits": [30, 20, 9, 7],
        }
    )


def test_ratios(week):
    with pytest.warns(DataWarning, match="1 of 4 rows"):
        cts = metrics.cts_sw(week)
    np.testing.assert_allclose(cts.to_numpy()[:3], [3200.0, 6400.0, 8000.0])
    assert np.isnan(cts.iloc[3])
    np.testing.assert_allclose(metrics.team_velocity(week), [1.5, 2.0, 1.0, 1.5])
    np.testing.assert_allclose(metrics.pages_per_oncall(week), [1.5, 1.0, 4.0, 1.0])
    np.testing.assert_allclose(metrics.cts_sw(week, unit="commits"), week["dev_cost"] / week["commits"])
    np.testing.assert_allclose(metrics.cts_sw(week, unit="crs_merged"), week["dev_cost"] / week["crs_merged"])


def test_panel_input_and_no_mutation(week):
    before = week.copy()
    with pytest.warns(DataWarning):
        out = metrics.add_metrics(week)
    pd.testing.assert_frame_equal(week, before)
    assert {"cts_sw", "log_cts", "cr_velocity", "rollback_rate_obs", "pages_per_oncall"} <= set(out.columns)
    p = Panel(week.iloc[:3].assign(team=["a", "a", "b"]))
    np.testing.assert_allclose(metrics.team_velocity(p), [1.5, 2.0, 1.0])


def test_errors(week):
    with pytest.raises(MissingColumnError, match="'dev_cost'"):
        metrics.cts_sw(week.drop(columns="dev_cost"))
    with pytest.raises(RangeError, match="negative"):
        metrics.team_velocity(week.assign(crs_merged=-1))
    with pytest.raises(CausalCTSError):
        metrics.cts_sw([1, 2, 3])


def test_capacity_formula():
    s = metrics.capacity_saved(developer_weeks=5200, dev_cost=1_000_000.0, cts_change=-0.1)
    assert s.engineering_years == pytest.approx(10.0)  # 10 percent of 100 engineer-years
    assert s.money == pytest.approx(100_000.0)
    t = metrics.capacity_saved(developer_weeks=5200, dev_cost=1_000_000.0, throughput_change=0.25)
    assert t.cts_change == pytest.approx(1 / 1.25 - 1)
    assert t.to_dict()["engineering_years"] == pytest.approx(20.0)
    with pytest.raises(CausalCTSError, match="exactly one"):
        metrics.capacity_saved(developer_weeks=1, dev_cost=1)
    with pytest.raises(RangeError):
        metrics.capacity_saved(developer_weeks=1, dev_cost=1, throughput_change=-1.5)
