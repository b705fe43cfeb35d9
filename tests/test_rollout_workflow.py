"""The rollout workflow of notebook 06 on a simulated staggered rollout: the estimators agree with each other."""

import numpy as np
import pytest

import causalcts


@pytest.fixture(scope="module")
def rollout():
    data = causalcts.simulate(n_teams=150, n_weeks=30, rollout_window=(0.1, 1.2), seed=4).data
    cohort = causalcts.onset_cohort(data, entity="team", time="week", share="ai_share", threshold=0.5)
    data = data.merge(cohort, left_on="team", right_index=True)
    data["onset"] = data["cohort"].where(data["cohort"] > 0)
    return data


def test_sun_abraham_and_callaway_santanna_agree_on_post_periods(rollout):
    panel = {"outcome": "cr_velocity", "entity": "team", "time": "week"}
    sa = causalcts.event_study(rollout, **panel, onset="onset", method="sun-abraham")
    cs = causalcts.att_gt(rollout, **panel, cohort="cohort", base_period="universal").aggregate("dynamic")
    # both compare each cohort with never-treated teams relative to week g-1, weighting cohorts by size
    for e in range(4):
        assert sa.params[f"e{e}"] == pytest.approx(cs.table.loc[e, "att"], abs=1e-8)


def test_dcdh_switchers_are_the_teams_whose_share_moves(rollout):
    res = causalcts.did_multiplegt_dyn(
        rollout, outcome="cr_velocity", entity="team", time="week", treatment="ai_share", effects=3
    )
    wide = rollout.pivot(index="team", columns="week", values="ai_share").to_numpy()
    moved = wide != wide[:, :1]
    first = np.where(moved.any(axis=1), moved.argmax(axis=1), -1)
    for ell in range(1, 4):
        expected = int(((first > 0) & (first - 1 + ell <= wide.shape[1] - 1)).sum())
        assert res.info["n_switchers"][f"Effect_{ell}"] == expected
