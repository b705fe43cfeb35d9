"""Cluster-robust covariance (CRV1, t(G-1)) and the wild cluster restricted bootstrap.

Oracles: wildboottest 0.3 (``WildboottestCL``, WCR11, Rademacher weights, full enumeration), statsmodels
``OLS(...).fit(cov_type="cluster")`` and a brute-force bootstrap that refits every draw.
"""

import numpy as np
import pytest
import statsmodels.api as sm

from causalcts.errors import CausalCTSError, TooFewClustersError
from causalcts.inference import crv1, wild_cluster_bootstrap
from causalcts.inference.cluster import fixed_effects_dof
from causalcts.inference.wild import TIE_RTOL, bootstrap_weights


def _data(G=8, n=120, seed=3):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, G, n)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    y = X @ [1.0, 0.2, -0.1] + rng.normal(size=G)[g] + rng.normal(size=n)
    return X, y, g


def _wildboottest(X, y, g, j):
    from wildboottest.wildboottest import WildboottestCL

    R = np.zeros(X.shape[1])
    R[j] = 1.0
    wb = WildboottestCL(X=X, Y=y, cluster=g, R=R, B=999, seed=1, parallel=False)
    wb.get_scores(bootstrap_type="11", impose_null=True)
    wb.get_weights(weights_type="rademacher")
    wb.get_numer()
    wb.get_denom()
    wb.get_tboot()
    wb.get_vcov()
    wb.get_tstat()
    wb.get_pvalue()
    return wb


@pytest.mark.parametrize("j", [1, 2])
def test_wcr_equals_wildboottest_full_enumeration(j):
    """G = 8 clusters, B = 999 > 2^8: both enumerate all 256 sign vectors in itertools.product order.

    wildboottest 0.3.2: ``WildboottestCL(X, Y, cluster, R, B=999)``, ``get_scores("11", impose_null=True)``,
    ``get_weights("rademacher")``, then numer/denom/tboot/vcov/tstat/pvalue. With enumeration the bootstrap t
    statistics are deterministic, so they must agree draw by draw to round-off (1e-10 is far above the ~1e-14
    seen and far below any real difference). wildboottest counts only draws with |t*| strictly above |t|; ours
    also counts ties (within a relative 1e-9), so the p-values may differ by exactly the tied draws.
    """
    X, y, g = _data()
    wb = _wildboottest(X, y, g, j)
    res = wild_cluster_bootstrap(X, y, g, restriction=j, draws=999)
    assert res.enumerated and res.draws == wb.B == 256
    np.testing.assert_allclose(res.statistic, float(np.squeeze(wb.t_stat)), rtol=1e-10)
    np.testing.assert_allclose(res.t_boot, wb.t_boot, rtol=1e-10, atol=1e-10)
    t, tb = abs(float(np.squeeze(wb.t_stat))), np.abs(wb.t_boot)
    assert res.pvalue == np.mean(tb >= t * (1 - TIE_RTOL))
    ties = np.sum((tb >= t * (1 - TIE_RTOL)) & ~(tb > t))
    assert res.pvalue - float(wb.pvalue) == pytest.approx(ties / 256, abs=1e-12)
    assert ties >= 0 and res.pvalue >= 2 / 256  # the draws v = 1 and v = -1 rebuild the sample


def _brute_force(X, y, g, j, v, ssc):
    """Refit every bootstrap sample and compute its CRV1 t statistic (no algebraic shortcut)."""
    Xr = np.delete(X, j, axis=1)
    br = np.linalg.lstsq(Xr, y, rcond=None)[0]
    fit_r, u = Xr @ br, y - Xr @ br
    out = []
    for b in range(v.shape[1]):
        ys = fit_r + u * v[g, b]
        beta = np.linalg.lstsq(X, ys, rcond=None)[0]
        V = crv1(X, ys - X @ beta, g, small_sample=False).cov * ssc
        out.append(beta[j] / np.sqrt(V[j, j]))
    return np.array(out)


def test_wcr_equals_brute_force_refits_with_webb_weights():
    """Random Webb draws (G = 12, B = 199): the G x G algebra equals refitting each bootstrap sample."""
    X, y, g = _data(G=12, n=150, seed=7)
    res = wild_cluster_bootstrap(X, y, g, restriction=1, draws=199, weights="webb", seed=11, level=None)
    v, full = bootstrap_weights(12, 199, weights="webb", seed=11)
    assert not full
    n, k = X.shape
    ssc = 12 / 11 * (n - 1) / (n - k)
    # both are exact least squares in float64: agreement to 1e-9 allows for the lstsq round-off
    np.testing.assert_allclose(res.t_boot, _brute_force(X, y, g, 1, v, ssc), rtol=1e-9)


def test_same_seed_same_draws_and_enumeration_threshold():
    X, y, g = _data(G=8)
    a = wild_cluster_bootstrap(X, y, g, restriction=1, draws=255, seed=5, level=None)
    b = wild_cluster_bootstrap(X, y, g, restriction=1, draws=255, seed=5, level=None)
    c = wild_cluster_bootstrap(X, y, g, restriction=1, draws=255, seed=6, level=None)
    assert not a.enumerated and a.draws == 255  # 2^8 = 256 > 255: random draws
    assert np.array_equal(a.t_boot, b.t_boot) and a.pvalue == b.pvalue
    assert not np.array_equal(a.t_boot, c.t_boot)
    full = wild_cluster_bootstrap(X, y, g, restriction=1, draws=256, level=None)
    assert full.enumerated and full.draws == 256


def test_interval_is_the_test_inversion():
    """At each bound the bootstrap p-value crosses 1 - level: just inside it is above, just outside at or below."""
    X, y, g = _data(G=14, n=200, seed=2)
    res = wild_cluster_bootstrap(X, y, g, restriction=1, draws=999, seed=3, level=0.9)
    assert res.lower < res.estimate < res.upper
    eps = 1e-6 * res.std_error  # well above the 1e-10 bisection tolerance, below any step of p(r)
    p = lambda r: wild_cluster_bootstrap(X, y, g, restriction=1, draws=999, seed=3, null=r, level=None).pvalue  # noqa: E731
    assert p(res.lower + eps) > 0.1 >= p(res.lower - eps)
    assert p(res.upper - eps) > 0.1 >= p(res.upper + eps)


def test_contrast_restriction_equals_reparameterised_coefficient():
    """R'beta = b1 - b2 tested directly equals the coefficient of x1 after substituting x1 + x2 for x2."""
    X, y, g = _data(G=10, n=150, seed=4)
    a = wild_cluster_bootstrap(X, y, g, restriction=[0, 1, -1], draws=999, seed=1)
    Z = X.copy()
    Z[:, 2] = X[:, 1] + X[:, 2]
    b = wild_cluster_bootstrap(Z, y, g, restriction=1, draws=999, seed=1)
    np.testing.assert_allclose([a.estimate, a.statistic, a.pvalue, a.lower, a.upper],
                               [b.estimate, b.statistic, b.pvalue, b.lower, b.upper], rtol=1e-8)  # fmt: skip


def test_crv1_equals_statsmodels_cluster_with_t_g_minus_1():
    """statsmodels ``OLS.fit(cov_type="cluster")`` applies G/(G-1)(n-1)/(n-k) and t(G-1) intervals, as CRV1."""
    X, y, g = _data(G=9, n=90, seed=8)
    sm_fit = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
    b = sm_fit.params
    V = crv1(X, y - X @ b, g)
    np.testing.assert_allclose(V.cov, sm_fit.cov_params(), rtol=1e-10)  # same formula; round-off only
    np.testing.assert_allclose(V.conf_int(b, 0.95), sm_fit.conf_int(0.05), rtol=1e-10)
    assert V.df == 8 == sm_fit.df_resid_inference


def test_fixed_effects_dof_matches_the_fixest_count():
    """K_fe = sum of levels - (F - 1) - levels of nested effects + number nested (pyfixest ``utils.get_ssc``)."""
    team = np.repeat(np.arange(6), 4)
    week = np.tile(np.arange(4), 6)
    assert fixed_effects_dof([team, week], team) == 4  # 6 + 4 - 1 - 6 + 1: teams nested in clusters
    assert fixed_effects_dof([team, week], team // 3) == 4  # teams nested in coarser clusters
    assert fixed_effects_dof([team, week], week) == 6  # weeks nested instead: 6 + 4 - 1 - 4 + 1
    assert fixed_effects_dof([team, week], np.arange(24) % 5) == 9  # nothing nested: 6 + 4 - 1


def test_fewer_than_two_clusters_is_an_error():
    X, y, _ = _data()
    one = np.zeros(len(y))
    with pytest.raises(TooFewClustersError, match="at least two clusters"):
        wild_cluster_bootstrap(X, y, one, restriction=1)
    with pytest.raises(TooFewClustersError, match="at least two clusters"):
        crv1(X, y, one)


def test_bad_options_are_named():
    X, y, g = _data()
    with pytest.raises(CausalCTSError, match="weights='mammen'"):
        wild_cluster_bootstrap(X, y, g, restriction=1, weights="mammen")
    with pytest.raises(CausalCTSError, match="restriction=5"):
        wild_cluster_bootstrap(X, y, g, restriction=5)
    with pytest.raises(CausalCTSError, match="draws=0"):
        wild_cluster_bootstrap(X, y, g, restriction=1, draws=0)
