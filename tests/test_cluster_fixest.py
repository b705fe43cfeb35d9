"""One CRV1 (``causalcts.inference.cluster.crv1``) for the within estimator and the exogeneity checks, by fixest's rule.

fixest's default small-sample correction (``ssc(adj = TRUE, fixef.K = "nested", cluster.adj = TRUE)``, pyfixest's
``k_fixef="nonnested"``) counts in K the regressors plus the levels of every fixed effect, one level less for each
fixed effect after the first, with a fixed effect nested in the clusters counted as one parameter. The design here
is the lead-test regression on a balanced panel (150 teams x 8 weeks, two-way effects, clustered by team): the
within estimator used to take K from the numerical rank of the absorbed period effects, which round-off put one
above P - 1 on this panel (its SEs were sqrt(1.0011) times fixest's); both now count K as fixest does.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pandas as pd
import pytest

import causalcts
from causalcts.data.panel import Panel
from causalcts.diagnostics import check_exogeneity

F = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate"
TERMS = ["L1.cr_velocity", "ai_share", "rollback_rate", "F1.ai_share"]


@pytest.fixture(scope="module")
def sim():
    return causalcts.simulate(150, 8, seed=7)


def _frame(sim) -> pd.DataFrame:
    p = Panel(sim.data)
    d = p.data.assign(lag=p.lag("cr_velocity").to_numpy(), lead=p.lead("ai_share").to_numpy())
    d = d.dropna(subset=["lag", "lead"])
    return d.assign(division=d["team"] // 10)  # 15 clusters in which the teams are nested


def _pyfixest(d: pd.DataFrame, cluster: str):
    pf = importlib.import_module("pyfixest")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyfixest's own pandas deprecation warnings
        return pf.feols("cr_velocity ~ lag + ai_share + rollback_rate + lead | team + week", data=d,
                        vcov={"CRV1": cluster})  # fmt: skip


def test_within_on_the_lead_regression_matches_pyfixest(sim):
    """Coefficients, SEs and 95% CIs to 1e-8 (the same closed form, so only round-off separates them)."""
    ref = _pyfixest(_frame(sim), "team")
    ours = causalcts.fit(F + " + F(ai_share, 1)", sim.data, method="within", checks=False)
    np.testing.assert_allclose(ours.params[TERMS].to_numpy(), ref.coef().to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(ours.std_errors[TERMS].to_numpy(), ref.se().to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(ours.conf_int().loc[TERMS].to_numpy(), ref.confint().to_numpy(), rtol=1e-8)


@pytest.mark.parametrize("cluster", ["team", "division", "week"])
def test_lead_test_is_pyfixests_squared_t(sim, cluster):
    """The check's F(1, G - 1) is fixest's squared t and its p-value fixest's, to 1e-8, whether the teams are the
    clusters, nested in them (division) or not nested at all (week: the team effects then count in K)."""
    d = _frame(sim)
    ref = _pyfixest(d, cluster)
    data = sim.data.assign(division=sim.data["team"] // 10)
    table = check_exogeneity(F, data, treatment="ai_share", cluster=cluster)
    t = float(ref.tstat()["lead"])
    G = d[cluster].nunique()
    assert table.loc["ai_share", "df"] == f"F(1, {G - 1})"
    lead = table[table["test"] == "lead"].loc["ai_share"]
    assert lead["statistic"] == pytest.approx(t**2, rel=1e-8)
    assert lead["pvalue"] == pytest.approx(float(ref.pvalue()["lead"]), rel=1e-8)


def test_absorbed_rank_and_iid_standard_errors_match_fixest(sim):
    """The unadjusted (iid) within SEs divide by n - k - rank(absorbed effects); on this balanced panel the rank is
    150 + 8 - 1 = 157 (one period effect is collinear with the team effects). numpy's default rank cut-off counted
    158 from round-off; pyfixest's iid SEs (same sample, same K rule) are the reference, to 1e-10 (round-off)."""
    pf = importlib.import_module("pyfixest")
    res = causalcts.fit("cr_velocity ~ ai_share + rollback_rate", sim.data, method="within", cov="unadjusted")
    assert res.info["absorbed"] == 150 + 8 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.feols("cr_velocity ~ ai_share + rollback_rate | team + week", sim.data, vcov="iid")
    np.testing.assert_allclose(res.std_errors.to_numpy(), ref.se().to_numpy(), rtol=1e-10)
