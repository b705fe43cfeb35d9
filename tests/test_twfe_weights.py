"""TWFE weights (causalcts.diagnostics.twfe_weights) against the Stata command twowayfeweights.

Sources of the numbers:

* ``tests/data/twowayfeweights_stata.json``: Stata's ``twowayfeweights`` (SSC) output, as stored in the
  twowayfeweights 0.1.0 PyPI sdist (``tests/fixtures/stata/results.json``, MIT licence; each case keeps the
  Stata command that produced it): cases wp_feTR (``twowayfeweights lwage nr year union, type(feTR)
  summary_measures test_random_weights(educ)``), wp_fdTR, gz_feTR and gz_fdTR (Gentzkow, Shapiro and
  Sinkinson 2011 newspapers data).
* ``tests/data/twowayfeweights_stata_wp_feTR_weights.csv``: the per-cell weights Stata saves with ``path()``
  for wp_feTR (same sdist, ``tests/fixtures/stata/weights/wp_feTR.csv.gz``).
* The twowayfeweights README (feTR of lwage on union): beta 0.1066, 820 positive and 147 negative weights,
  sum of negative weights -0.0105 (printed digits).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalcts.diagnostics import twfe_weights
from causalcts.errors import DataWarning, MissingColumnError, NoTreatmentVariationError

DATA = Path(__file__).parent / "data"
STATA = json.loads((DATA / "twowayfeweights_stata.json").read_text())["cases"]
WAGEPAN = pd.read_csv(DATA / "wagepan_twfeweights.csv")
GENTZKOW = pd.read_csv(DATA / "gentzkow_newspapers.csv")

CASES = {
    "wp_feTR": (
        WAGEPAN,
        dict(outcome="lwage", entity="nr", time="year", treatment="union", test_random_weights=["educ"]),
    ),
    "wp_fdTR": (
        WAGEPAN,
        dict(
            outcome="lwage",
            entity="nr",
            time="year",
            treatment="union",
            kind="fdTR",
            first_differences=("diff_lwage", "diff_union"),
            test_random_weights=["educ"],
        ),
    ),
    "gz_feTR": (GENTZKOW, dict(outcome="prestout", entity="cnty90", time="year", treatment="numdailies")),
    "gz_fdTR": (
        GENTZKOW,
        dict(
            outcome="prestout",
            entity="cnty90",
            time="year",
            treatment="numdailies",
            kind="fdTR",
            first_differences=("changeprestout", "changedailies"),
            test_random_weights=["year"],
        ),
    ),
}
# Stata stores its results in single precision (float32 has 7 significant digits); measured differences are
# below 9e-8 relative, so 1e-7 relative is the honest bound.
REL = 1e-7


@pytest.mark.parametrize("case", list(CASES))
def test_matches_stata(case):
    data, kw = CASES[case]
    ref = STATA[case]
    res = twfe_weights(data, **kw)
    assert (res.n_positive, res.n_negative, res.n_treated_cells) == (ref["nr_plus"], ref["nr_minus"], ref["tot_cells"])
    assert res.beta == pytest.approx(ref["beta"], rel=REL)
    assert res.sum_positive == pytest.approx(ref["sum_plus"], rel=REL)
    assert res.sum_negative == pytest.approx(ref["sum_minus"], rel=REL)
    assert res.sigma_fe == pytest.approx(ref["sensibility"], rel=REL)
    assert res.sigma_fe_opposite == pytest.approx(ref["sensibility2"], rel=REL)
    for var, row in ref["random_weights"].items():
        got = res.random_weights.loc[var]
        for ours, theirs in (("coef", "Coef"), ("std_error", "SE"), ("tstat", "tstat"), ("correlation", "Correlation")):
            assert got[ours] == pytest.approx(row[theirs], rel=REL)


def test_readme_printed_digits():
    """twowayfeweights README: beta 0.1066, 820 positive, 147 negative, sum of negative weights -0.0105."""
    res = twfe_weights(WAGEPAN, outcome="lwage", entity="nr", time="year", treatment="union")
    assert round(res.beta, 4) == 0.1066
    assert (res.n_positive, res.n_negative) == (820, 147)
    assert round(res.sum_negative, 4) == -0.0105
    assert res.sum_positive + res.sum_negative == pytest.approx(1.0, abs=1e-12)  # weights sum to one


def test_cell_weights_match_stata():
    res = twfe_weights(WAGEPAN, outcome="lwage", entity="nr", time="year", treatment="union")
    stata = pd.read_csv(DATA / "twowayfeweights_stata_wp_feTR_weights.csv").rename(
        columns={"Group_TWFE": "nr", "Time_TWFE": "year"}
    )
    merged = stata.merge(res.weights, on=["nr", "year"], how="left", suffixes=("_stata", ""))
    assert merged["weight"].notna().all()
    # Stata writes 9 significant digits; measured 2.2e-10 against weights up to 3.5e-3
    np.testing.assert_allclose(merged["weight"], merged["weight_stata"], rtol=0, atol=1e-9)
    assert (res.weights["weight"] != 0).sum() == len(stata)


def test_fd_differences_built_here_equal_the_supplied_ones():
    """wagepan has no gaps, so differencing lwage and union here gives Stata's diff_lwage / diff_union numbers."""
    own = twfe_weights(WAGEPAN, outcome="lwage", entity="nr", time="year", treatment="union", kind="fdTR")
    ref = STATA["wp_fdTR"]
    assert (own.n_positive, own.n_negative) == (ref["nr_plus"], ref["nr_minus"])
    assert own.beta == pytest.approx(ref["beta"], rel=REL)
    assert own.sum_negative == pytest.approx(ref["sum_minus"], rel=REL)


def test_beta_equals_dummy_variable_regression():
    """Two routes: beta from the weights equals the union coefficient of lwage on union and team and year dummies."""
    X = pd.get_dummies(WAGEPAN[["nr", "year"]].astype(str), drop_first=True).astype(float)
    X.insert(0, "const", 1.0)
    X["union"] = WAGEPAN["union"]
    coef = np.linalg.lstsq(X.to_numpy(), WAGEPAN["lwage"].to_numpy(), rcond=None)[0][-1]
    res = twfe_weights(WAGEPAN, outcome="lwage", entity="nr", time="year", treatment="union")
    assert res.beta == pytest.approx(coef, rel=1e-10)  # measured 6e-14: both are exact least squares


def test_result_is_immutable_and_data_untouched():
    df = WAGEPAN.copy()
    res = twfe_weights(df, outcome="lwage", entity="nr", time="year", treatment="union")
    pd.testing.assert_frame_equal(df, WAGEPAN)
    w = res.weights
    w.loc[0, "weight"] = 5.0
    assert res.weights.loc[0, "weight"] != 5.0
    with pytest.raises(AttributeError):
        res.beta = 0.0


def test_treatment_that_never_varies():
    df = WAGEPAN.assign(union=0)
    with pytest.raises(NoTreatmentVariationError, match="union"):
        twfe_weights(df, outcome="lwage", entity="nr", time="year", treatment="union")
    # constant within every team (absorbed by the team fixed effects)
    with pytest.raises(NoTreatmentVariationError, match="within any team"):
        twfe_weights(WAGEPAN, outcome="lwage", entity="nr", time="year", treatment="educ")


def test_missing_values_and_columns():
    df = WAGEPAN.copy()
    df.loc[[0, 5], "lwage"] = np.nan
    with pytest.warns(DataWarning, match="Dropped 2 of 4360 rows"):
        twfe_weights(df, outcome="lwage", entity="nr", time="year", treatment="union")
    with pytest.raises(MissingColumnError, match="unionx"):
        twfe_weights(WAGEPAN, outcome="lwage", entity="nr", time="year", treatment="unionx")


def test_plots_draw():
    import matplotlib.pyplot as plt

    from causalcts.did.att_gt import att_gt
    from causalcts.plots.did_plots import plot_att_gt, plot_event_time, plot_twfe_weights

    ax = plot_twfe_weights(twfe_weights(WAGEPAN, outcome="lwage", entity="nr", time="year", treatment="union"))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("147 negative" in s for s in labels)
    res = att_gt(
        pd.read_csv(DATA / "mpdta.csv"), outcome="lemp", entity="countyreal", time="year", cohort="first.treat"
    )
    assert len(plot_att_gt(res, bands=res.bootstrap(99, seed=0))) == 3
    assert plot_event_time(res.aggregate("dynamic")).get_xlabel().startswith("event time")
    plt.close("all")
