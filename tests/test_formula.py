"""The formula layer: formulaic syntax plus the gap-aware panel operators L, F and D.

Every construct is checked against the column computed by hand on a panel with gaps; fits with an
expression in the formula are checked against fits on a precomputed column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import causalcts
from causalcts import Panel
from causalcts.bayes.formula_re import parse_mixed_formula
from causalcts.data.design import build_design
from causalcts.data.formula import Term, formula_spec, parse_formula
from causalcts.errors import MissingColumnError, MissingValueError, SpecificationError


def _gappy_frame(seed: int = 0, n_teams: int = 12) -> pd.DataFrame:
    """``n_teams`` teams x 10 weeks, about 15% of rows missing (gaps inside teams), shuffled rows."""
    rng = np.random.default_rng(seed)
    rows = [(f"t{i:02d}", w) for i in range(n_teams) for w in range(1, 11)]
    df = pd.DataFrame(rows, columns=["team", "week"])
    df["x"] = rng.uniform(0.5, 3.0, len(df))
    df["z"] = rng.normal(size=len(df))
    df["size"] = rng.choice(["small", "mid", "large"], len(df))
    df["weird name"] = rng.normal(size=len(df))
    df["y"] = rng.normal(size=len(df))
    keep = rng.uniform(size=len(df)) > 0.15
    keep[::10] = True  # every team keeps its first week
    return df[keep].sample(frac=1.0, random_state=1).reset_index(drop=True)


DF = _gappy_frame()
BIG = _gappy_frame(seed=1, n_teams=80)  # for GMM: more teams than instruments
PANEL = Panel(DF)
SORTED = PANEL.data  # the design's row order


def _shift_by_hand(column: str | np.ndarray, k: int) -> np.ndarray:
    """Value of the same team k weeks earlier (negative k: later), NaN when that week is missing."""
    values = SORTED[column].to_numpy() if isinstance(column, str) else column
    lookup = {(t, w): v for t, w, v in zip(SORTED["team"], SORTED["week"], values)}
    return np.array([lookup.get((t, w - k), np.nan) for t, w in zip(SORTED["team"], SORTED["week"])])


def _col(design, name: str) -> np.ndarray:
    return design.X[:, design.names.index(name)]


# -------------------------------------------------------------------------------- each construct by hand
def test_log_interaction_power_and_quoting_equal_the_hand_computed_columns():
    d = build_design('y ~ np.log(x) + x:z + I(x**2) + Q("weird name") + `weird name`:z', PANEL)
    x, z, w = (SORTED[c].to_numpy() for c in ("x", "z", "weird name"))
    # exact: formulaic evaluates the same numpy operations on the same float64 values
    np.testing.assert_array_equal(_col(d, "np.log(x)"), np.log(x))
    np.testing.assert_array_equal(_col(d, "x:z"), x * z)
    np.testing.assert_array_equal(_col(d, "I(x ** 2)"), x**2)
    np.testing.assert_array_equal(_col(d, "Q('weird name')"), w)
    np.testing.assert_array_equal(_col(d, "weird name:z"), w * z)
    np.testing.assert_array_equal(d.y, SORTED["y"].to_numpy())


def test_categorical_gives_reduced_rank_dummies_without_the_constant():
    d = build_design("y ~ C(size) + x", PANEL)
    assert "Intercept" not in d.names
    size = SORTED["size"].to_numpy()
    # treatment coding against the first level in sorted order ("large")
    for level in ("mid", "small"):
        np.testing.assert_array_equal(_col(d, f"C(size)[T.{level}]"), (size == level).astype(float))
    assert [t for t in d.terms if t.variable.startswith("C(size)")] == [
        Term("C(size)[T.mid]", 0),
        Term("C(size)[T.small]", 0),
    ]


def test_lead_is_missing_where_the_next_week_is_missing():
    d = build_design("y ~ F(x, 1) + F(z, 1:2)", PANEL)
    lead = _col(d, "F1.x")
    by_hand = _shift_by_hand("x", -1)
    assert np.isnan(by_hand).sum() > PANEL.n_entities  # gaps inside teams, not only each team's last week
    np.testing.assert_array_equal(lead, by_hand)  # NaN in the same places, equal values elsewhere
    np.testing.assert_array_equal(_col(d, "F2.z"), _shift_by_hand("z", -2))
    assert d.terms[0] == Term("x", -1) and d.names[:3] == ["F1.x", "F1.z", "F2.z"]


def test_difference_and_lagged_expression_are_gap_aware():
    d = build_design("y ~ D(x) + L(np.log(x), 1) + L(D(z), 1) + L(x, 0:2)", PANEL)
    x = SORTED["x"].to_numpy()
    np.testing.assert_array_equal(_col(d, "D.x"), x - _shift_by_hand("x", 1))
    np.testing.assert_array_equal(_col(d, "L1.np.log(x)"), _shift_by_hand(np.log(x), 1))
    dz = SORTED["z"].to_numpy() - _shift_by_hand("z", 1)
    np.testing.assert_array_equal(_col(d, "L1.D.z"), _shift_by_hand(dz, 1))
    np.testing.assert_array_equal(_col(d, "L2.x"), _shift_by_hand("x", 2))
    assert d.names == ["D.x", "L1.np.log(x)", "L1.D.z", "x", "L1.x", "L2.x"]
    assert d.terms[:3] == [Term("D.x", 0), Term("np.log(x)", 1), Term("D.z", 1)]
    # the variables GMM lags are available, in the panel's row order
    np.testing.assert_array_equal(d.columns["np.log(x)"], np.log(x))
    np.testing.assert_array_equal(d.values(["D.z"])["D.z"], dz)


def test_lag_of_an_interaction_with_a_lag():
    d = build_design("y ~ L(x, 1):z", PANEL)
    np.testing.assert_array_equal(_col(d, "L1.x:z"), _shift_by_hand("x", 1) * SORTED["z"].to_numpy())
    assert d.terms == [Term("L1.x:z", 0)]


def test_outcome_lags_and_old_formulas_keep_their_names():
    d = build_design("y ~ L(y, 1:2) + L(x, 0:1) + z", PANEL)
    assert d.names == ["L1.y", "L2.y", "x", "L1.x", "z"]
    assert d.outcome_lags == ("L1.y", "L2.y")
    assert parse_formula("n ~ L(n, 1:2) + L(w, 0:1) + k")[1] == [
        Term("n", 1),
        Term("n", 2),
        Term("w", 0),
        Term("w", 1),
        Term("k", 0),
    ]
    np.testing.assert_array_equal(_col(d, "L2.y"), _shift_by_hand("y", 2))


@pytest.mark.parametrize("variant", ["y ~ L(y, 1) + x - 1", "y ~ 0 + L(y, 1) + x", "y ~ L(y, 1) + x + 1"])
def test_constant_removal_changes_nothing(variant):
    ref = build_design("y ~ L(y, 1) + x", PANEL)
    d = build_design(variant, PANEL)
    assert d.names == ref.names
    np.testing.assert_array_equal(d.X, ref.X)


def test_categorical_dummies_do_not_change_with_minus_one():
    with_c = build_design("y ~ x + C(size)", PANEL)
    without = build_design("y ~ x + C(size) - 1", PANEL)
    assert with_c.names == without.names  # still reduced rank: the entity effects absorb the constant
    np.testing.assert_array_equal(with_c.X, without.X)


def test_derived_columns_are_attached_and_the_callers_frame_is_untouched():
    before = DF.copy()
    d = build_design("y ~ np.log(x) + D(x) + C(size)", DF.pipe(Panel))
    pd.testing.assert_frame_equal(DF, before)
    assert "np.log(x)" in d.derived_panel.columns and "C(size)[T.mid]" in d.derived_panel.columns
    assert "D.x" not in d.derived_panel.columns  # missing after gaps: only in d.columns
    logx = d.derived_panel.column("np.log(x)").to_numpy()
    np.testing.assert_array_equal(logx, np.log(SORTED["x"].to_numpy()))
    assert "np.log(x)" not in PANEL.columns  # the input panel gains nothing


def test_formula_spec_lists_numeric_and_categorical_columns():
    spec = formula_spec("np.log(y) ~ L(np.log(y), 1) + C(size) + x:z + Q('weird name')")
    assert spec.outcome == "np.log(y)"
    assert spec.numeric == ("weird name", "x", "y", "z")
    assert spec.categorical == ("size",)


# -------------------------------------------------------------------------------- fits
def test_within_fit_with_log_equals_fit_on_precomputed_log():
    data = DF.assign(logx=np.log(DF["x"]))
    a = causalcts.fit("y ~ L(y, 1) + np.log(x)", data, method="within")
    b = causalcts.fit("y ~ L(y, 1) + logx", data, method="within")
    # same design up to the column's name: the numbers are the same floating-point operations
    np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(a.std_errors.to_numpy(), b.std_errors.to_numpy(), rtol=1e-12, atol=0)
    assert list(a.params.index) == ["L1.y", "np.log(x)"]


def test_gmm_with_lagged_log_equals_fit_on_precomputed_column():
    data = BIG.assign(logx=np.log(BIG["x"]))
    a = causalcts.fit("y ~ L(y, 1) + L(np.log(x), 0:1)", data, method="diff-gmm", collapse=True)
    b = causalcts.fit("y ~ L(y, 1) + L(logx, 0:1)", data, method="diff-gmm", collapse=True)
    # the IV-style instruments are lags of the derived variable, built from the same values
    np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-10, atol=0)
    assert list(a.params.index) == ["L1.y", "np.log(x)", "L1.np.log(x)"]
    assert a.n_instruments == b.n_instruments


def test_gmm_style_instruments_of_a_derived_variable():
    data = BIG.assign(logx=np.log(BIG["x"]))
    a = causalcts.fit("y ~ L(y, 1) + np.log(x)", data, method="diff-gmm", gmm={"y": (2, 3), "np.log(x)": (1, 2)})
    b = causalcts.fit("y ~ L(y, 1) + logx", data, method="diff-gmm", gmm={"y": (2, 3), "logx": (1, 2)})
    # tolerance: two generalised inverses of the same matrices, float64 round-off only
    np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-9, atol=0)


def test_fit_with_a_string_categorical_column():
    res = causalcts.fit("y ~ L(y, 1) + C(size)", DF, method="within")
    assert list(res.params.index) == ["L1.y", "C(size)[T.mid]", "C(size)[T.small]"]


def test_dropna_with_expressions_and_categories_drops_the_same_rows_as_by_hand():
    bad = DF.copy()
    bad.loc[[4, 9], "x"] = np.nan
    f = "y ~ L(y, 1) + np.log(x) + C(size)"
    with pytest.warns(causalcts.DataWarning, match="Dropped 2 of"):
        a = causalcts.fit(f, bad, method="within", dropna=True)
    b = causalcts.fit(f, DF.drop(index=[4, 9]), method="within")
    pd.testing.assert_series_equal(a.params, b.params)  # same rows, same arithmetic


# -------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "formula,exc,match",
    [
        ("y ~ L(y, 1) + hours", MissingColumnError, "hours"),
        ("y ~ np.log(hours)", MissingColumnError, "hours"),
        ("y ~ C(hours)", MissingColumnError, "hours"),
        ("y ~ L(x, -1)", SpecificationError, r"L\(x, -1\).*below 0"),
        ("y ~ F(x, -2)", SpecificationError, r"F\(x, -2\).*below 0"),
        ("y ~ L(x, a)", SpecificationError, r"Cannot read the lags in 'L\(x, a\)'"),
        ("y ~ L(x, 1, 2)", SpecificationError, r"'L\(x, 1, 2\)' has 3 arguments"),
        ("y ~ L(x, 2:1)", SpecificationError, r"L\(x, 2:1\)"),
        ("y ~ D(x, 2)", SpecificationError, r"D\(x, 2\)"),
        ("y ~ L(, 1)", SpecificationError, "names no variable"),
        ("y ~ L(x + z, 1)", SpecificationError, "one variable or expression"),
        ("y ~ L(x, 1", SpecificationError, "Unbalanced"),
        ("y ~ y + x", SpecificationError, "'y'.*contemporaneous"),
        ("y ~ L(y, 0:1)", SpecificationError, "'y'.*contemporaneous"),
        ("y ~ I(y * 2)", SpecificationError, r"contemporaneous regressor \('I\(y \* 2\)'\)"),
        ("y ~ x + x", SpecificationError, "'x' twice"),
        ("y ~ L(x, 0:1) + x", SpecificationError, "'x' twice"),
        ("y ~ L(x, 1) + L(x, 1:2)", SpecificationError, "'L1.x' twice"),
        ("y ~ x + + z", SpecificationError, "Empty term"),
        ("y ~ 1", SpecificationError, "no regressors"),
        ("y x", SpecificationError, "must have the form"),
        ("y ~ np.log(z)", SpecificationError, r"'np.log\(z\)' is NaN or infinite"),
    ],
)
def test_bad_formulas_raise_naming_the_term(formula, exc, match):
    with pytest.raises(exc, match=match):
        build_design(formula, PANEL)


def test_missing_value_in_a_categorical_column_is_named():
    bad = DF.copy()
    bad.loc[3, "size"] = None
    with pytest.raises(MissingValueError, match="'size'"):
        build_design("y ~ C(size)", Panel(bad))


def test_fit_names_an_unknown_column():
    with pytest.raises(MissingColumnError, match="hours"):
        causalcts.fit("y ~ L(y, 1) + np.log(hours)", DF, method="within")


# -------------------------------------------------------------------------------- mixed models
SLEEP = causalcts.datasets.load("sleepstudy")


def test_two_bars_on_one_factor_equal_the_double_bar():
    spec = parse_mixed_formula("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)")
    assert spec == parse_mixed_formula("Reaction ~ Days + (Days || Subject)")
    assert spec.random == ("Intercept", "Days") and not spec.correlated
    a = causalcts.mixed("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", SLEEP, method="reml")
    b = causalcts.mixed("Reaction ~ Days + (Days || Subject)", SLEEP, method="reml")
    # the same model and data go through the same optimiser: identical numbers
    np.testing.assert_array_equal(a.params.to_numpy(), b.params.to_numpy())
    assert a.llf == b.llf
    np.testing.assert_array_equal(a.cov_re.to_numpy(), b.cov_re.to_numpy())


def test_mixed_with_expressions_equals_precomputed_columns():
    data = SLEEP.assign(logd=np.log1p(SLEEP["Days"]), late=(SLEEP["Days"] >= 5).astype(int).astype(str))
    a = causalcts.mixed("Reaction ~ np.log1p(Days) + C(late) + (1 | Subject)", data, method="reml")
    dummies = data.assign(late1=(data["late"] == "1").astype(float))
    b = causalcts.mixed("Reaction ~ logd + late1 + (1 | Subject)", dummies, method="reml")
    assert list(a.params.index) == ["Intercept", "np.log1p(Days)", "C(late)[T.1]"]
    # same design matrix built two ways; L-BFGS-B then Nelder-Mead from the same start
    np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-8)


@pytest.mark.parametrize(
    "formula,match",
    [
        ("Reaction ~ Days + (1 + Days | Subject) + (0 + I(Days**2) | Subject)", "correlated block"),
        ("Reaction ~ L(Days, 1) + (1 | Subject)", "need a panel"),
        ("Reaction ~ Days + (1 | Subject) + (1 | Subject)", "listed twice"),
    ],
)
def test_mixed_formulas_the_model_cannot_take(formula, match):
    with pytest.raises(SpecificationError, match=match):
        parse_mixed_formula(formula)
