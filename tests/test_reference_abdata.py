"""Reference tests on the Arellano-Bond (1991) employment panel (tests/data/abdata.csv).

Every number below is quoted from a published source, with its command:

* Arellano and Bond (1991), Table 4, column (a1); reproduced by Roodman (2009), "How to do
  xtabond2", Stata Journal 9(1), with
  ``xtabond2 n L.n L2.n w L.w L(0/2).(k ys) yr*, gmm(L.n) iv(w L.w L(0/2).(k ys) yr*) nolevel robust``
  and by R plm ``pgmm(..., effect = "twoways", model = "onestep")`` with robust SEs:
  611 observations, 140 firms, 41 instruments; AR(1) z = -3.60, AR(2) z = -0.52 (p = 0.606)
  (plm's test_mtest.R quotes -3.5996 and -0.51603 from the xtabond manual and DPD/Ox abest3.out);
  Hansen chi2(25) = 31.38 (p = 0.177); Sargan chi2(25) = 67.59.
* Roodman (2009), section 3.1, bounding estimators on the same regressors with year dummies,
  751 observations: pooled OLS (``regress``) L1.n = 1.044643 (SE 0.0336647); firm fixed effects
  (``xtreg, fe``, conventional SE) L1.n = 0.7329476 (SE 0.039304).

Tolerances follow the printed digits: half a unit in the last printed digit (5e-8 for numbers
printed with seven decimals, which is tighter than 1e-6 relative for every coefficient here).
"""

import pytest

import causalcts
from causalcts import datasets

DATA = datasets.load("abdata")
FORMULA = "n ~ L(n, 1:2) + L(w, 0:1) + L(k, 0:2) + L(ys, 0:2)"

A1 = {  # term: (coefficient, robust SE), Arellano and Bond (1991) Table 4 (a1)
    "L1.n": (0.6862261, 0.1445943),
    "L2.n": (-0.0853582, 0.0560155),
    "w": (-0.6078208, 0.1782055),
    "L1.w": (0.3926237, 0.1679931),
    "k": (0.3568456, 0.0590203),
    "L1.k": (-0.0580012, 0.0731797),
    "L2.k": (-0.0199475, 0.0327126),
    "ys": (0.6085073, 0.1725313),
    "L1.ys": (-0.7111651, 0.2317163),
    "L2.ys": (0.1057969, 0.1412021),
}


@pytest.fixture(scope="module")
def a1():
    return causalcts.fit(
        FORMULA,
        DATA,
        entity="id",
        time="year",
        method="diff-gmm",
        time_effects=True,
        gmm={"n": (2, None)},
        steps=1,
        cov="robust",
    )


@pytest.mark.parametrize("term", list(A1))
def test_a1_coefficients_and_robust_se(a1, term):
    coef, se = A1[term]
    assert a1.params[term] == pytest.approx(coef, abs=5e-8)
    assert a1.std_errors[term] == pytest.approx(se, abs=5e-8)


def test_a1_counts(a1):
    assert a1.nobs == 611
    assert a1.n_entities == 140
    assert a1.n_instruments == 41
    assert list(a1.params.index) == list(A1)


def test_a1_specification_tests(a1):
    assert a1.tests["hansen"]["statistic"] == pytest.approx(31.38, abs=0.005)
    assert a1.tests["hansen"]["df"] == 25
    assert a1.tests["hansen"]["pvalue"] == pytest.approx(0.177, abs=0.0005)
    assert a1.tests["sargan"]["statistic"] == pytest.approx(67.59, abs=0.005)
    assert a1.tests["ar2"]["statistic"] == pytest.approx(-0.51603, abs=0.000005)
    assert a1.tests["ar2"]["pvalue"] == pytest.approx(0.606, abs=0.0005)
    assert a1.tests["ar1"]["statistic"] == pytest.approx(-3.5996, abs=0.00005)


def test_pooled_ols_upper_bound():
    r = causalcts.fit(FORMULA, DATA, entity="id", time="year", method="pooled", cov="unadjusted")
    assert r.nobs == 751
    assert r.params["L1.n"] == pytest.approx(1.044643, abs=5e-7)
    assert r.std_errors["L1.n"] == pytest.approx(0.0336647, abs=5e-8)


def test_lsdv_lower_bound():
    r = causalcts.fit(FORMULA, DATA, entity="id", time="year", method="within", cov="unadjusted")
    assert r.nobs == 751
    assert r.params["L1.n"] == pytest.approx(0.7329476, abs=5e-8)
    assert r.std_errors["L1.n"] == pytest.approx(0.039304, abs=5e-7)


# Stata [XT] xtabond manual, Example 4 (https://www.stata.com/manuals/xtxtabond.pdf):
#   . xtabond n l(0/1).w l(0/2).(k ys) yr1980-yr1984 year, lags(2) twostep vce(robust) noconstant
# 611 observations, 140 groups, 41 instruments; two-step estimates with Windmeijer-corrected
# ("WC-robust") standard errors. In first differences, yr1980-yr1984 and the trend span the same
# space as a full set of year dummies, so the coefficients below equal ours with time_effects=True.
EX4 = {
    "L1.n": (0.6287089, 0.1934138),
    "L2.n": (-0.0651882, 0.0450501),
    "w": (-0.5257597, 0.1546107),
    "L1.w": (0.3112899, 0.2030006),
    "k": (0.2783619, 0.0728019),
    "L1.k": (0.0140994, 0.0924575),
    "L2.k": (-0.0402484, 0.0432745),
    "ys": (0.5919243, 0.1730916),
    "L1.ys": (-0.5659863, 0.2611008),
    "L2.ys": (0.1005433, 0.1610987),
}


@pytest.fixture(scope="module")
def ex4():
    return causalcts.fit(
        FORMULA,
        DATA,
        entity="id",
        time="year",
        method="diff-gmm",
        time_effects=True,
        gmm={"n": (2, None)},
        steps=2,
        cov="robust",
    )


@pytest.mark.parametrize("term", list(EX4))
def test_two_step_windmeijer_matches_stata_example4(ex4, term):
    coef, se = EX4[term]
    assert ex4.params[term] == pytest.approx(coef, abs=5e-8)
    assert ex4.std_errors[term] == pytest.approx(se, abs=5e-8)


def test_two_step_counts(ex4):
    assert (ex4.nobs, ex4.n_entities, ex4.n_instruments) == (611, 140, 41)
    assert ex4.tests["hansen"]["df"] == 25
