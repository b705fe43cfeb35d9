"""Bias-corrected within estimator: a covariance that accounts for the correction (issue 9).

0.2 reported the within covariance, whose 90% intervals for the persistence covered 0.74-0.79 at T = 8. The
covariance is now the delta method through the correction (``causalcts/estimators/bias.py`` docstring); the
coverage study is ``benchmarks/coverage_bias_corrected.py``.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import causalcts
from causalcts.data.design import build_design
from causalcts.data.panel import Panel
from causalcts.estimators import bias
from causalcts.estimators.linear import within_transform

F = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
TERMS = ["L1.cr_velocity", "ai_share"]


def _within_arrays(data, formula):
    arrays = build_design(formula, Panel(data, entity="team", time="week"))
    ok = np.isfinite(arrays.y) & np.all(np.isfinite(arrays.X), axis=1)
    M, absorbed = within_transform(
        np.column_stack([arrays.y[ok], arrays.X[ok]]), arrays.codes[ok], arrays.periods[ok], True
    )
    _, team = np.unique(arrays.codes[ok], return_inverse=True)
    return M[:, 0], M[:, 1:], team, absorbed, len(np.unique(arrays.periods[ok]))


def _weighted_estimate(yt, Xt, team, w, dof, start):
    """The corrected estimate with team weights ``w``, solved from its defining equations by a root finder.

    X~'(y~ - X~ theta) + e_1 sigma2 sum_i h(beta, T_i) = 0 with sigma2 = e~'e~ / dof, every sum over teams
    weighted (dof shared out as T_i dof / n): at w = 1 this is the estimator itself.
    """
    n, G = len(yt), len(w)
    Ti = np.bincount(team, minlength=G).astype(float)
    wr = w[team]

    def equations(theta):
        e = yt - Xt @ theta
        sigma2 = float(wr @ (e * e)) / float(w @ Ti * dof / n)
        out = Xt.T @ (wr * e)
        out[0] += sigma2 * float(w @ bias._h(float(np.clip(theta[0], -0.99, 0.99)), Ti))
        return out

    sol = optimize.root(equations, start, method="hybr", tol=1e-14)
    # converged to round-off (hybr reports "xtol too small" once it can improve no further)
    assert np.abs(equations(sol.x)).max() < 1e-12 * np.abs(Xt.T @ yt).max(), sol.message
    return sol.x


def test_covariance_matches_finite_difference_influence():
    """The analytic covariance equals c sum_i psi_i psi_i' with psi_i = d theta / d w_i taken by central finite
    differences of the re-solved estimator (an infinitesimal jackknife that never uses the Jacobian or h').

    Step 1e-5 on a weight of 1: central-difference error O(1e-10) relative and root-finder error ~1e-13 / 1e-5,
    so 1e-6 relative agreement is a real check (measured: ~1e-9) and a missing h' term (about 30% of the
    persistence variance at T = 8) or a wrong sign in the sigma2 row fails it by orders of magnitude.
    """
    data = causalcts.simulate(40, 8, seed=21).data
    res = causalcts.fit(F, data, method="bias-corrected")
    yt, Xt, team, absorbed, n_periods = _within_arrays(data, F)
    n, k, G = len(yt), Xt.shape[1], int(team.max()) + 1
    dof = n - k - absorbed
    theta = _weighted_estimate(yt, Xt, team, np.ones(G), dof, res.params.to_numpy())
    np.testing.assert_allclose(theta, res.params.to_numpy(), rtol=1e-9)  # the fixed point solves the equations
    eps, psi = 1e-5, np.empty((G, k))
    for i in range(G):
        up, down = np.ones(G), np.ones(G)
        up[i], down[i] = 1 + eps, 1 - eps
        psi[i] = (
            _weighted_estimate(yt, Xt, team, up, dof, theta) - _weighted_estimate(yt, Xt, team, down, dof, theta)
        ) / (2 * eps)
    K = k + (n_periods - 1) + 1  # regressors, period effects, intercept (CRV1 as the within estimator)
    V = G / (G - 1) * (n - 1) / (n - K) * (psi.T @ psi)
    np.testing.assert_allclose(res.cov.loc[TERMS, TERMS].to_numpy(), V, rtol=1e-6)


@pytest.mark.parametrize("cov", ["robust", "unadjusted"])
def test_without_a_correction_it_is_the_within_covariance(monkeypatch, cov):
    """With h = 0 the stacked equations are the within estimator's: the covariance must be within's (1e-10: the
    same numbers through an extra (k+1)-square inverse)."""
    data = causalcts.simulate(50, 8, seed=5).data
    within = causalcts.fit(F, data, method="within", cov=cov)
    monkeypatch.setattr(bias, "_h", lambda beta, T: np.zeros_like(T))
    monkeypatch.setattr(bias, "_dh", lambda beta, T: np.zeros_like(T))
    # and the lag's extra Gaussian score variance, which the within unadjusted covariance also leaves out
    monkeypatch.setattr(bias, "_lag_score_excess", lambda beta, T: np.zeros_like(T))
    res = causalcts.fit(F, data, method="bias-corrected", cov=cov)
    np.testing.assert_allclose(res.params.to_numpy(), within.params.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(res.cov.to_numpy(), within.cov.to_numpy(), rtol=1e-10)


def test_dh_is_the_derivative_of_h():
    T = np.array([3.0, 8.0, 26.0])
    for beta in (-0.5, 0.0, 0.5, 0.9):
        fd = (bias._h(beta + 1e-6, T) - bias._h(beta - 1e-6, T)) / 2e-6
        np.testing.assert_allclose(bias._dh(beta, T), fd, rtol=1e-6)  # central difference: O(1e-12) + round-off
    assert (bias._dh(0.995, T) == 0).all()  # the fixed point clips beta at 0.99: the correction is flat there


def test_lag_score_map_reproduces_the_nickell_term():
    """The shock-to-lag map behind the unadjusted meat gives tr(L'M) = -h(beta, T) (Nickell's closed form), so both
    describe the same model; 1e-12: one closed form against a sum of T^2 terms."""
    for beta in (-0.3, 0.5, 0.9):
        for size in (3, 8, 26):
            t = np.arange(size)
            lag = t[:, None] - 1 - t[None, :]
            L = np.where(lag >= 0, beta ** np.maximum(lag, 0), 0.0)
            A = L.T @ (np.eye(size) - 1.0 / size)
            h = bias._h(beta, np.array([float(size)]))[0]
            assert np.trace(A) == pytest.approx(-h, rel=1e-12)
            assert bias._lag_score_excess(beta, np.array([float(size)]))[0] == pytest.approx(np.trace(A @ A), rel=1e-12)


def test_persistence_se_is_larger_than_within_and_long_run_uses_it():
    """With beta-hat > 0 the correction rises with beta-hat (h' > 0), so the corrected estimate moves more than one
    for one with the within one and its SE must exceed the within SE; long_run's delta method uses this covariance."""
    for seed in (1, 2, 3):
        data = causalcts.simulate(100, 8, seed=seed).data
        res = causalcts.fit(F + " + rollback_rate", data, method="bias-corrected")
        within = pd.Series(res.info["within_std_errors"])
        assert res.std_errors["L1.cr_velocity"] > 1.1 * within["L1.cr_velocity"], (res.std_errors, within)
        assert set(res.cov.index) == set(res.params.index) and np.isfinite(res.cov.to_numpy()).all()
        b, g = res.params["L1.cr_velocity"], res.params["ai_share"]
        grad = np.array([g / (1 - b) ** 2, 1 / (1 - b)])
        se = np.sqrt(grad @ res.cov.loc[TERMS, TERMS].to_numpy() @ grad)
        assert res.long_run("ai_share")["std_error"] == pytest.approx(se, rel=1e-12)


def test_quick_coverage_beats_the_within_se():
    """60 replications at N = 150, T = 8 with adoption tied to the team effect (about 6 s).

    The within SE understates the corrected persistence estimate's spread (SE/SD about 0.75 measured over 300
    replications at N = 300, benchmarks/results/coverage_bias_corrected.json), the corrected SE does not (about
    1.0). An SD from 60 draws has ~9% sampling error, so the corrected ratio must lie in 0.8-1.25 and the within
    one below 0.85 (seeds fixed: deterministic; measured: 0.88 and 0.60, 90% coverage 0.83 against 0.67).
    """
    est, new, old = [], [], []
    for r in range(60):
        data = causalcts.simulate(150, 8, selection=1.0, seed=3000 + r).data
        res = causalcts.fit(F, data, method="bias-corrected")
        est.append(res.params["L1.cr_velocity"])
        new.append(res.std_errors["L1.cr_velocity"])
        old.append(res.info["within_std_errors"]["L1.cr_velocity"])
    est, new, old = map(np.array, (est, new, old))
    sd = est.std(ddof=1)
    ratio_new, ratio_old = new.mean() / sd, old.mean() / sd
    assert 0.8 < ratio_new < 1.25, (ratio_new, ratio_old)
    assert ratio_old < 0.85, (ratio_new, ratio_old)
    q = stats.t.ppf(0.95, 149)
    assert (np.abs(est - 0.5) < q * new).mean() > (np.abs(est - 0.5) < q * old).mean()


def test_unadjusted_agrees_with_clustered_under_homoskedastic_normal_shocks():
    """simulate()'s shocks are homoskedastic normal, so the classical and clustered persistence SEs estimate the same
    thing. The clustered SE's own sampling error at 300 teams is about 1 / sqrt(2 * 300) = 4%, so 0.85-1.15 is
    ~3.5 of those; the unadjusted meat without the lag's Gaussian excess term gave 1.11 and 1.21 on seeds 3 and 4
    (measured), with it 0.97, 1.04 and 1.11 on seeds 3-5; over 300 replications both SEs match the spread at T = 8
    (SE/SD 0.99, benchmarks/results/coverage_bias_corrected.json)."""
    for seed in (3, 4, 5):
        data = causalcts.simulate(300, 8, persistence=0.5, effect=0.1, selection=1.0, seed=seed).data
        robust = causalcts.fit(F + " + rollback_rate", data, method="bias-corrected")
        classical = causalcts.fit(F + " + rollback_rate", data, method="bias-corrected", cov="unadjusted")
        ratio = classical.std_errors["L1.cr_velocity"] / robust.std_errors["L1.cr_velocity"]
        assert 0.85 < ratio < 1.15, (seed, ratio)


def test_a_diverging_correction_raises_instead_of_returning_nan():
    """Under strong feedback (adoption reacting to past outcomes) the iterated correction has no fixed point in
    (-1, 1): one such panel of the exogeneity grid (feedback design, replication 249, found by the grid run, where
    106 of 500 fits returned NaN silently) must raise an EstimationError that points to the checks."""
    from causalcts.errors import EstimationError
    from causalcts.evaluation import montecarlo as mc

    grid = mc.load_grid("exogeneity")
    design = next(d for d in grid.designs if d.get("feedback"))
    ss = mc.cell_seed(grid.seed, design, 249)
    sim = causalcts.simulate(**design, seed=int(ss.spawn(2)[0].generate_state(1)[0]))
    with pytest.raises(EstimationError, match="check_exogeneity"):
        causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="bias-corrected")


def test_a_correction_that_settles_at_the_unit_root_warns():
    """Near a unit root (the smoke grid's persistence-0.95 design, T = 8, replication 0) the correction converges
    to 0.9916, beyond the 0.99 at which Nickell's formula is evaluated: the estimate is returned with a
    ConvergenceWarning that says so, not silently and not as an error."""
    from causalcts.errors import ConvergenceWarning
    from causalcts.evaluation import montecarlo as mc

    grid = mc.load_grid("smoke")
    design = next(d for d in grid.designs if d["persistence"] == 0.95)
    sim = causalcts.simulate(**design, seed=int(mc.cell_seed(grid.seed, design, 0).spawn(2)[0].generate_state(1)[0]))
    with pytest.warns(ConvergenceWarning, match="0.99"):
        res = causalcts.fit(grid.formula, sim.data, method="bias-corrected", checks=False)
    assert res.params["L1.cr_velocity"] >= 0.99 and np.isfinite(res.std_errors).all()
