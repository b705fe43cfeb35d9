"""CTS-SW and delivery metrics, and the capacity translation."""

import numpy as np
import pandas as pd
import pytest

import causalcts
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
    assert set(metrics.DERIVED) <= set(out.columns)  # the plain names formulas use
    assert not any(c.endswith("_obs") for c in out.columns)
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


def test_readme_formula_works_on_real_data(week):
    """Raw telemetry only: add_metrics gives the columns the README's formulas name."""
    raw = pd.concat([week.assign(team=week["team"] + str(i)) for i in range(3)], ignore_index=True)
    raw["deployments"] = raw["deployments"].replace(0, 3)
    out = metrics.add_metrics(raw)
    np.testing.assert_allclose(out["rollback_rate"], raw["rollbacks"] / raw["deployments"])
    np.testing.assert_allclose(out["interventions_per_deploy"], raw["interventions"] / raw["deployments"])
    res = causalcts.fit("cr_velocity ~ rollback_rate + interventions_per_deploy", out, method="pooled")
    assert {"rollback_rate", "interventions_per_deploy"} <= set(res.params.index)


def test_derived_mapping_is_complete_and_read_only():
    for name, (fn, needed, description) in metrics.DERIVED.items():
        assert callable(fn) and needed and description
        assert set(needed) <= {
            "dev_cost",
            "deployments",
            "crs_merged",
            "developers",
            "rollbacks",
            "interventions",
            "pages",
            "oncall_builders",
        }, name
    with pytest.raises(TypeError):
        metrics.DERIVED["new"] = (None, (), "")


def test_derive_adds_only_missing_columns_and_never_mutates(week):
    before = week.copy()
    mine = week.assign(cr_velocity=99.0)
    out = metrics.derive(mine, ["cr_velocity", "pages_per_oncall", "developers"])
    pd.testing.assert_frame_equal(week, before)
    assert "pages_per_oncall" not in mine.columns  # the caller's frame is untouched
    assert (out["cr_velocity"] == 99.0).all()  # an existing column wins
    np.testing.assert_allclose(out["pages_per_oncall"], week["pages"] / week["oncall_builders"])
    assert set(out.columns) == set(mine.columns) | {"pages_per_oncall"}  # nothing else added
    with pytest.warns(DataWarning, match="1 of 4 rows"):  # deployments is zero in row 3
        cts = metrics.derive(week, ["log_cts"])["log_cts"]
    np.testing.assert_allclose(cts.iloc[:3], np.log(week["dev_cost"] / week["deployments"]).iloc[:3])


def test_derive_names_the_missing_raw_columns(week):
    with pytest.raises(MissingColumnError, match=r"'rollback_rate'.*\['rollbacks', 'deployments'\].*\['rollbacks'\]"):
        metrics.derive(week.drop(columns="rollbacks"), ["rollback_rate"])
    with pytest.raises(MissingColumnError, match="velocityy"):
        metrics.derive(week, ["velocityy"])


def test_add_metrics_warns_when_it_replaces_different_values(week):
    with pytest.warns(DataWarning, match=r"replaced the existing column\(s\) \['cr_velocity'\]"):
        metrics.add_metrics(week.assign(cr_velocity=5.0, deployments=week["deployments"].replace(0, 1)))


def test_derive_takes_raw_column_names_by_keyword(week):
    """A cost column called ``developer_cost`` (and other renamed counts) can be used without renaming."""
    mine = week.rename(columns={"dev_cost": "developer_cost", "developers": "headcount", "deployments": "deploys"})
    before = mine.copy()
    with pytest.raises(MissingColumnError, match=r"needs the raw column\(s\) \['dev_cost'.*cost="):
        metrics.derive(mine, ["cts_sw"])
    with pytest.warns(DataWarning, match="'deploys' is zero"):
        out = metrics.derive(
            mine, ["cts_sw", "log_cts", "cr_velocity", "deploys_per_builder", "rollback_rate"],
            cost="developer_cost", developers="headcount", deployments="deploys",
        )  # fmt: skip
    with pytest.warns(DataWarning):
        ref = metrics.derive(week, ["cts_sw", "log_cts", "cr_velocity", "deploys_per_builder", "rollback_rate"])
    for c in ("cts_sw", "log_cts", "cr_velocity", "deploys_per_builder", "rollback_rate"):
        pd.testing.assert_series_equal(out[c], ref[c])
    pd.testing.assert_frame_equal(mine, before)  # the caller's frame is untouched
    with pytest.warns(DataWarning):
        added = metrics.add_metrics(mine, cost="developer_cost", developers="headcount", deployments="deploys")
    assert added["cts_sw"].iloc[0] == pytest.approx(3200.0)
    with pytest.raises(CausalCTSError, match="cost="):
        metrics.derive(week, ["cts_sw"], cost="")


def test_raw_columns_are_documented():
    assert set(metrics.RAW_COLUMNS) == {c for _, raw, _ in metrics.DERIVED.values() for c in raw}
    for c in metrics.RAW_COLUMNS:
        assert f"``{c}``" in metrics.__doc__
