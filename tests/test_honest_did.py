"""HonestDiD sensitivity analysis (Rambachan and Roth 2023) against the HonestDiD README's Medicaid example.

Data: ``tests/data/ehec_data.csv`` (provenance in tests/data/README.md). The README (github.com/asheshrambachan/
HonestDiD, README.md at commit 6813f02, section "Example usage - Medicaid expansions") keeps years before 2016,
drops the states that expanded in 2015 (``filter(year < 2016 & (is.na(yexp2) | yexp2 != 2015))``; states that
expanded in 2016 or later stay in as not-yet-treated controls), sets D = 1 for ``yexp2 == 2014`` and runs
``fixest::feols(dins ~ i(year, D, ref = 2013) | stfips + year, cluster = "stfips")``; betahat and sigma are its
coefficients (pre 2008..2012, post 2014, 2015: numPrePeriods = 5, numPostPeriods = 2) and clustered covariance.
The README prints no coefficients; the regression is checked against pyfixest ``feols`` (run here).

README tables (both for the first post-period effect, l_vec = (1, 0), alpha = 0.05):

``createSensitivityResults(..., Mvec = seq(0, 0.05, by = 0.01))`` (method FLCI, Delta^SD(M))::

    M     lb        ub
    0     0.0259    0.0607
    0.01  0.0132    0.0787
    0.02  0.00286   0.0907
    0.03  -0.00714  0.101
    0.04  -0.0171   0.111
    0.05  -0.0271   0.121

and "the breakdown value for a significant effect is M = 0.03" (approximately; first M whose CI covers 0).

``createSensitivityResults_relativeMagnitudes(..., Mbarvec = seq(0.5, 2, by = 0.5))`` (method C-LF,
Delta^RM(Mbar))::

    Mbar  lb        ub
    0.5   0.0241    0.0673
    1     0.0171    0.0720
    1.5   0.00859   0.0796
    2     -0.00107  0.0883

and "the breakdown value for a significant effect is Mbar = 2".

Tolerances. FLCI: |ours - README| <= max(1e-4, half a unit of the last printed digit). The 1e-4 floor covers,
besides the rounding to three significant digits (<= 5e-5 for the four-decimal numbers), HonestDiD's own
numerical error: it takes the folded-normal quantile from 10^6 simulated draws (standard error about 2e-3 in
units of the estimator's sd of ~0.015, i.e. ~3e-5) and, at M = 0, a CVXR/ECOS solution on the boundary
sd = h_min; ours is exact (observed differences <= 7.1e-5). C-LF: 1e-3. HonestDiD reports the outermost accepted
point of a 1,000-point grid on +/- 20 sd (step 3.7e-4 here, always inwards), and both implementations simulate
the least-favorable critical value from 1,000 draws with different random numbers; observed differences are
<= 3.7e-4 with seed 0 and <= 5.9e-4 over seeds 0..3.
"""

import importlib
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from causalcts.diagnostics import honest_did
from causalcts.diagnostics.honest import _dual_vertices, _folded_normal_cv
from causalcts.did import event_study
from causalcts.errors import CausalCTSError, RangeError, SpecificationError

matplotlib.use("Agg")

DATA = Path(__file__).parent / "data" / "ehec_data.csv"

README_FLCI = [  # (M, lb, ub, decimals printed for lb, ub)
    (0.00, 0.0259, 0.0607, 4, 4),
    (0.01, 0.0132, 0.0787, 4, 4),
    (0.02, 0.00286, 0.0907, 5, 4),
    (0.03, -0.00714, 0.101, 5, 3),
    (0.04, -0.0171, 0.111, 4, 3),
    (0.05, -0.0271, 0.121, 4, 3),
]
README_CLF = [(0.5, 0.0241, 0.0673), (1.0, 0.0171, 0.0720), (1.5, 0.00859, 0.0796), (2.0, -0.00107, 0.0883)]


@pytest.fixture(scope="module")
def ehec():
    df = pd.read_csv(DATA)
    df = df[(df["year"] < 2016) & (df["yexp2"].isna() | (df["yexp2"] != 2015))].copy()
    df["D"] = (df["yexp2"] == 2014).astype(int)
    df["onset"] = np.where(df["yexp2"] == 2014, 2014.0, np.nan)
    return df


@pytest.fixture(scope="module")
def es(ehec):
    return event_study(ehec, outcome="dins", entity="stfips", time="year", onset="onset")


@pytest.fixture(scope="module")
def flci(es):
    return honest_did(es, M=[r[0] for r in README_FLCI])


@pytest.fixture(scope="module")
def clf(es):
    return honest_did(es, restriction="relative_magnitudes", Mbar=[r[0] for r in README_CLF])


def test_regression_matches_fixest(ehec, es):
    """The README's TWFE event study: 43 states, 344 rows; causalcts = pyfixest to float64 precision (1e-8)."""
    pf = importlib.import_module("pyfixest")
    fit = pf.feols("dins ~ i(year, D, ref=2013) | stfips + year", data=ehec, vcov={"CRV1": "stfips"})
    assert es.nobs == 344 and es.info["n_clusters"] == 43
    assert es.info["event_times"] == [-6, -5, -4, -3, -2, 0, 1]  # years 2008..2012, 2014, 2015
    np.testing.assert_allclose(es.params.to_numpy(), fit.coef().to_numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(es.cov.to_numpy(), np.asarray(fit._vcov), rtol=1e-8, atol=1e-16)
    assert es.params["e0"] == pytest.approx(0.046447, abs=1e-6)  # the effect the sensitivity analysis is about


def test_flci_matches_honestdid_readme(flci):
    assert flci.columns.tolist() == ["M", "lower", "upper", "method"]
    assert (flci["method"] == "FLCI").all()
    for (M, lb, ub, dl, du), (_, row) in zip(README_FLCI, flci.iterrows(), strict=True):
        assert row["M"] == M
        assert row["lower"] == pytest.approx(lb, abs=max(1e-4, 0.5 * 10.0**-dl)), M
        assert row["upper"] == pytest.approx(ub, abs=max(1e-4, 0.5 * 10.0**-du)), M
    assert flci.attrs["breakdown"] == 0.03
    assert flci.attrs["parameter"] == "M" and flci.attrs["event_times"] == [-6, -5, -4, -3, -2, 0, 1]


def test_clf_matches_honestdid_readme(clf):
    assert clf.columns.tolist() == ["Mbar", "lower", "upper", "method"]
    assert (clf["method"] == "C-LF").all()
    for (Mbar, lb, ub), (_, row) in zip(README_CLF, clf.iterrows(), strict=True):
        assert row["Mbar"] == Mbar
        assert row["lower"] == pytest.approx(lb, abs=1e-3), Mbar
        assert row["upper"] == pytest.approx(ub, abs=1e-3), Mbar
    assert clf.attrs["breakdown"] == 2.0


def test_original_interval_is_the_normal_ci(es, flci):
    """constructOriginalCS: l'beta_post +/- z_{0.975} sd; the robust intervals contain the point estimate."""
    b, se = es.params["e0"], es.std_errors["e0"]
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(flci.attrs["original"], (b - z * se, b + z * se), rtol=1e-12)
    assert ((flci["lower"] < b) & (flci["upper"] > b)).all()
    assert flci["lower"].is_monotonic_decreasing and flci["upper"].is_monotonic_increasing  # Delta^SD(M) nested


def test_betahat_sigma_interface_equals_result_interface(es, flci):
    tab = honest_did(betahat=es.params.to_numpy(), sigma=es.cov.to_numpy(), num_pre=5, num_post=2,
                     M=flci["M"].to_numpy())  # fmt: skip
    np.testing.assert_allclose(tab[["lower", "upper"]].to_numpy(), flci[["lower", "upper"]].to_numpy(), atol=1e-12)


def test_flci_weights_reach_the_linear_extrapolation_for_large_m(flci):
    """At large M the optimal estimator extrapolates the last pre-period (all weight on e-2: v = (0,..,0,1))."""
    np.testing.assert_allclose(flci.attrs["weights"][0.05], [0, 0, 0, 0, 1], atol=1e-6)
    v0 = np.array(flci.attrs["weights"][0.0])
    assert np.abs(v0).sum() > 0.1 and not np.allclose(v0, [0, 0, 0, 0, 1], atol=1e-3)


def test_folded_normal_quantile_matches_scipy():
    """cv_alpha(t) solves P(|N(t,1)| <= c) = 1 - alpha; scipy's foldnorm is an independent implementation."""
    for t in (0.0, 0.3, 1.0, 2.5, 8.0):
        assert _folded_normal_cv(t, 0.05) == pytest.approx(stats.foldnorm.ppf(0.95, t), rel=1e-9)


def test_dual_vertices_give_the_lp_value():
    """max over dual vertices of g'y equals min {eta : y - X xi <= eta sd} solved by HiGHS (1e-9)."""
    rng = np.random.default_rng(3)
    for m, k in ((4, 1), (6, 2), (5, 0)):
        X = rng.normal(size=(m, k))
        sd = rng.uniform(0.5, 2.0, m)
        V = _dual_vertices(np.column_stack([sd, X]))
        for _ in range(5):
            y = rng.normal(size=m)
            lp = optimize.linprog(np.r_[1.0, np.zeros(k)], A_ub=-np.column_stack([sd, X]), b_ub=-y,
                                  bounds=[(None, None)] * (k + 1), method="highs")  # fmt: skip
            if lp.status == 3:  # unbounded below: no dual vertex
                assert len(V) == 0
            else:
                assert lp.status == 0 and (V @ y).max() == pytest.approx(lp.fun, abs=1e-9)


def test_relative_magnitudes_zero_is_close_to_the_original_ci(es):
    """Mbar = 0 forces delta_post = 0: the C-LF set is then near the conventional interval (within 10% of its width)."""
    tab = honest_did(es, restriction="relative_magnitudes", Mbar=0)
    lo, hi = tab.attrs["original"]
    assert tab["lower"].iloc[0] == pytest.approx(lo, abs=0.1 * (hi - lo))
    assert tab["upper"].iloc[0] == pytest.approx(hi, abs=0.1 * (hi - lo))


def test_average_effect_and_one_post_period(es):
    b, V = es.params.to_numpy(), es.cov.to_numpy()
    avg = honest_did(es, M=[0.0], l_vec=[0.5, 0.5])
    assert avg["lower"].iloc[0] < 0.5 * (b[5] + b[6]) < avg["upper"].iloc[0]
    one = honest_did(betahat=b[:6], sigma=V[:6, :6], num_pre=5, num_post=1, restriction="relative_magnitudes",
                     Mbar=[1.0])  # fmt: skip
    assert one["lower"].iloc[0] < b[5] < one["upper"].iloc[0]


def _no_pre_period_result():
    rng = np.random.default_rng(0)
    teams, t = np.repeat(np.arange(20), 4), np.tile(np.arange(4), 20)
    df = pd.DataFrame({"team": teams, "t": t, "onset": np.where(teams < 10, 1.0, np.nan)})
    df["y"] = rng.normal(size=80)
    return event_study(df, outcome="y", entity="team", time="t", onset="onset")


def test_bad_input_raises_causalcts_errors(es):
    res = _no_pre_period_result()
    assert res.info["event_times"] == [0, 1, 2]
    with pytest.raises(SpecificationError, match="no pre-period"):
        honest_did(res)
    with pytest.raises(SpecificationError, match="num_pre=0"):
        honest_did(betahat=[0.1, 0.2], sigma=np.eye(2), num_pre=0, num_post=2)
    with pytest.raises(RangeError, match="M must be non-negative"):
        honest_did(es, M=[0.01, -0.01])
    with pytest.raises(RangeError, match="Mbar must be non-negative"):
        honest_did(es, restriction="relative_magnitudes", Mbar=-1)
    with pytest.raises(SpecificationError, match="restriction='sd'"):
        honest_did(es, restriction="sd")
    with pytest.raises(SpecificationError, match="l_vec"):
        honest_did(es, l_vec=[1.0])
    with pytest.raises(SpecificationError, match="Mbar= goes with"):
        honest_did(es, Mbar=1)
    with pytest.raises(SpecificationError, match="binned"):
        honest_did(event_study(pd.read_csv(DATA).assign(onset=lambda d: d["yexp2"]), outcome="dins",
                               entity="stfips", time="year", onset="onset", leads=3, lags=2))  # fmt: skip
    with pytest.raises(SpecificationError, match="betahat has 3 entries"):
        honest_did(betahat=[0.1, 0.2, 0.3], sigma=np.eye(3), num_pre=1, num_post=1)
    with pytest.raises(SpecificationError, match="event_study"):
        honest_did("not a result")
    assert issubclass(SpecificationError, CausalCTSError) and issubclass(RangeError, CausalCTSError)


def test_sensitivity_plot(flci):
    import matplotlib.pyplot as plt

    from causalcts.plots.honest_plots import plot_honest_did

    ax = plot_honest_did(flci)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Original" in labels and "FLCI" in labels and "breakdown M = 0.03" in labels
    vlines = [ln for ln in ax.get_lines() if np.allclose(ln.get_xdata(), 0.03)]
    assert vlines, "the breakdown value must be marked"
    assert ax.get_xlabel() == "M"
    with pytest.raises(CausalCTSError, match="honest_did"):
        plot_honest_did(pd.DataFrame({"lower": [0.0]}))
    plt.close("all")
