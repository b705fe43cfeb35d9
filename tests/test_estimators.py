"""Dynamic-panel estimators: equivalences, Nickell bias and its corrections, errors, shared interface."""

import importlib
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import causalcts
from causalcts import Panel, registry, simulate
from causalcts.errors import (
    CausalCTSError,
    CollinearityError,
    ConvergenceWarning,
    DuplicateKeyError,
    InstrumentWarning,
    MissingColumnError,
    MissingValueError,
    RangeError,
    SpecificationError,
    TooFewPeriodsError,
)
from causalcts.estimators.bias import nickell_bias

F = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate"


@pytest.fixture(scope="module")
def small():
    return simulate(80, 12, seed=21)


# ---------------------------------------------------------------- equivalences
@pytest.mark.parametrize("time_effects", [True, False])
@pytest.mark.parametrize("gappy", [True, False])
def test_within_equals_linearmodels(time_effects, gappy):
    """Two-way within = linearmodels PanelOLS(entity_effects, time_effects), clustered by entity, to 1e-8."""
    linearmodels = importlib.import_module("linearmodels")
    sim = simulate(60, 20, seed=2, **({"missing_weeks": 0.1, "unbalanced": 0.3} if gappy else {}))
    p = Panel(sim.data)
    d = p.data.assign(lag=p.lag("cr_velocity").to_numpy()).dropna(subset=["lag"]).set_index(["team", "week"])
    ref = linearmodels.PanelOLS(
        d["cr_velocity"], d[["lag", "ai_share", "rollback_rate"]], entity_effects=True, time_effects=time_effects
    ).fit(cov_type="clustered", cluster_entity=True)
    ours = causalcts.fit(F, sim.data, method="within", time_effects=time_effects)
    np.testing.assert_allclose(ours.params.to_numpy(), ref.params.to_numpy(), rtol=1e-8)
    # linearmodels scales the clustered covariance by n / (n - d - k) (d: every absorbed effect with two-way
    # effects, none with one-way); we use fixest's CRV1 G/(G-1) (n-1)/(n-K) (K = k + period effects + 1):
    # docs/inference.md. Same meat, so the SEs differ by exactly that ratio.
    n, k, G = ours.nobs, 3, ours.n_entities
    absorbed = ours.info["absorbed"]
    lm_scale = n / (n - (absorbed if time_effects else 0) - k)
    ours_scale = G / (G - 1) * (n - 1) / (n - (k + absorbed - G + 1))
    np.testing.assert_allclose(
        ours.std_errors.to_numpy(), ref.std_errors.to_numpy() * np.sqrt(ours_scale / lm_scale), rtol=1e-8
    )


def test_within_equals_dummy_variable_regression(small):
    """The exact two-way within transformation equals OLS with team and week dummies (LSDV)."""
    ours = causalcts.fit(F, small.data, method="within", cov="unadjusted")
    p = Panel(small.data)
    d = p.data.assign(lag=p.lag("cr_velocity").to_numpy()).dropna(subset=["lag"])
    X = pd.concat(
        [
            d[["lag", "ai_share", "rollback_rate"]],
            pd.get_dummies(d["team"], prefix="i", dtype=float),
            pd.get_dummies(d["week"], prefix="w", drop_first=True, dtype=float),
        ],
        axis=1,
    ).to_numpy()
    beta, *_ = np.linalg.lstsq(X, d["cr_velocity"].to_numpy(), rcond=None)
    np.testing.assert_allclose(ours.params.to_numpy(), beta[:3], rtol=1e-9)


def test_anderson_hsiao_is_just_identified_iv(small):
    """Anderson-Hsiao = IV on first differences with y_{t-2} instrumenting the differenced lag; its first-stage F
    equals statsmodels' F test of the excluded instrument in the OLS first stage, and F < 10 warns."""
    sm = importlib.import_module("statsmodels.api")
    with pytest.warns(InstrumentWarning, match=r"first-stage F .* < 10 \(Staiger and Stock 1997"):
        res = causalcts.fit(
            "cr_velocity ~ L(cr_velocity, 1) + ai_share", small.data, method="anderson-hsiao", time_effects=False
        )
    p = Panel(small.data)
    dy, dlag = p.diff("cr_velocity").to_numpy(), p.lag(p.diff("cr_velocity").to_numpy()).to_numpy()
    dx = p.diff("ai_share").to_numpy()
    z = p.lag("cr_velocity", 2).to_numpy()
    ok = np.isfinite(dy) & np.isfinite(dlag) & np.isfinite(z) & np.isfinite(dx)
    X = np.column_stack([dlag, dx])[ok]
    Z = np.column_stack([z, dx])[ok]
    beta = np.linalg.solve(Z.T @ X, Z.T @ dy[ok])
    np.testing.assert_allclose(res.params.to_numpy(), beta, rtol=1e-10)
    assert res.n_instruments == 2 and res.tests["hansen"]["df"] == 0
    first = sm.OLS(dlag[ok], Z).fit().f_test(np.array([[1.0, 0.0]]))  # H0: y_{t-2} does not enter the first stage
    fs = res.tests["first_stage"]
    assert fs["statistic"] == pytest.approx(float(np.squeeze(first.fvalue)), rel=1e-8)  # same closed form
    assert (fs["df"], fs["df_denom"]) == (1, int(first.df_denom))
    assert fs["pvalue"] == pytest.approx(float(first.pvalue), rel=1e-6)


def test_collapse_and_lag_limits_shrink_the_instrument_set(small):
    kw = dict(method="diff-gmm", time_effects=False)
    full = causalcts.fit(F, small.data, gmm={"cr_velocity": (2, None)}, **kw)
    limited = causalcts.fit(F, small.data, gmm={"cr_velocity": (2, 3)}, **kw)
    collapsed = causalcts.fit(F, small.data, gmm={"cr_velocity": (2, None)}, collapse=True, **kw)
    # weeks 0..11; differenced rows t = 2..11. Uncollapsed, all lags: t - 1 columns (lags 2..t) per t;
    # lags 2..3: one column at t = 2, two after; collapsed: one per lag 2..11. Plus 2 IV-style columns.
    assert full.n_instruments == sum(t - 1 for t in range(2, 12)) + 2
    assert limited.n_instruments == 1 + 2 * 9 + 2
    assert collapsed.n_instruments == 10 + 2


def test_fod_and_fd_estimate_the_same_persistence(small):
    """First differences and forward orthogonal deviations remove the same team effects, so on one panel
    their persistence estimates differ by sampling noise only: within three FD standard errors."""
    fd = causalcts.fit(F, small.data, method="diff-gmm", gmm={"cr_velocity": (2, 4)}, collapse=True)
    fod = causalcts.fit(F, small.data, method="diff-gmm", gmm={"cr_velocity": (2, 4)}, collapse=True, transform="fod")
    assert fd.nobs == fod.nobs
    assert abs(fd.params["L1.cr_velocity"] - fod.params["L1.cr_velocity"]) < 3 * fd.std_errors["L1.cr_velocity"]


def test_results_are_immutable_and_refit_does_not_change_them(small):
    r1 = causalcts.fit(F, small.data, method="within")
    before = r1.std_errors.copy()
    causalcts.fit(F, small.data, method="within", cov="unadjusted")
    pd.testing.assert_series_equal(r1.std_errors, before)
    with pytest.raises((AttributeError, TypeError)):
        r1.params = None
    copy = r1.params
    copy.iloc[0] = 3.0  # each access hands out a copy
    assert r1.params.iloc[0] != 3.0


# ---------------------------------------------------------------- Nickell bias
@pytest.fixture(scope="module")
def nickell_runs():
    """Within, bias-corrected and jackknife estimates of persistence 0.5 over 4 seeds at T = 10 and 26."""
    out = {}
    f = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
    for T in (10, 26):
        rows = []
        for seed in range(4):
            sim = simulate(
                1000,
                T,
                effect=0.0,
                week_sd=0.0,
                seed=seed,
                covariate_effects={"rollback_rate": 0.0, "interventions_per_deploy": 0.0},
            )
            rows.append(
                {
                    m: causalcts.fit(f, sim.data, method=m, time_effects=False).params["L1.cr_velocity"]
                    for m in ("within", "bias-corrected", "jackknife")
                }
            )
        out[T] = pd.DataFrame(rows)
    return out


@pytest.mark.parametrize("T", [10, 26])
def test_within_shows_the_nickell_bias_the_formula_predicts(nickell_runs, T):
    """Negative control: the within estimator is biased by Nickell's formula (T - 1 periods in the regression)."""
    est = nickell_runs[T]["within"]
    bias, mc_se = est.mean() - 0.5, est.std(ddof=1) / np.sqrt(len(est))
    predicted = nickell_bias(0.5, T - 1)
    assert bias < -0.04  # clearly biased
    assert abs(bias - predicted) < max(4 * mc_se, 0.01)  # four Monte Carlo SEs (floor for 4-seed SE noise)


@pytest.mark.parametrize("T", [10, 26])
@pytest.mark.parametrize("method", ["bias-corrected", "jackknife"])
def test_corrections_remove_most_of_the_bias(nickell_runs, T, method):
    within_bias = abs(nickell_runs[T]["within"].mean() - 0.5)
    corrected_bias = abs(nickell_runs[T][method].mean() - 0.5)
    assert corrected_bias < 0.25 * within_bias


def test_bias_correction_also_moves_the_effect():
    sim = simulate(600, 10, effect=0.2, selection=1.0, seed=5)
    f = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
    w = causalcts.fit(f, sim.data, method="within")
    bc = causalcts.fit(f, sim.data, method="bias-corrected")
    assert bc.params["ai_share"] != pytest.approx(w.params["ai_share"], abs=1e-6)
    assert abs(bc.params["L1.cr_velocity"] - 0.5) < abs(w.params["L1.cr_velocity"] - 0.5)


def test_gmm_recovers_truth_and_long_run():
    sim = simulate(800, 12, effect=0.15, seed=9)
    r = causalcts.fit(F, sim.data, method="diff-gmm", gmm={"cr_velocity": (2, 4)}, collapse=True, steps=2)
    for term, truth in (("L1.cr_velocity", 0.5), ("ai_share", 0.15)):
        assert abs(r.params[term] - truth) < 3 * r.std_errors[term]
    lr = r.long_run("ai_share")
    assert abs(lr["estimate"] - 0.3) < 3 * lr["std_error"]
    assert lr["lower"] < lr["estimate"] < lr["upper"]


def test_long_run_delta_method_matches_numeric_gradient(small):
    r = causalcts.fit(F, small.data, method="within")
    b, V = r.params.to_numpy(), r.cov.to_numpy()
    g = lambda x: x[1] / (1 - x[0])  # noqa: E731
    eps = 1e-6
    grad = np.array([(g(b + eps * np.eye(3)[j]) - g(b - eps * np.eye(3)[j])) / (2 * eps) for j in range(3)])
    lr = r.long_run("ai_share")
    assert lr["estimate"] == pytest.approx(g(b))
    assert lr["std_error"] == pytest.approx(np.sqrt(grad @ V @ grad), rel=1e-6)


# ---------------------------------------------------------------- errors and warnings
def test_unknown_variable_is_named(small):
    with pytest.raises(MissingColumnError, match="'velocity'"):
        causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + velocity", small.data)


def test_unknown_method_lists_choices(small):
    with pytest.raises(SpecificationError, match="'diff-gmm'"):
        causalcts.fit(F, small.data, method="gmm")


def test_unknown_keyword(small):
    with pytest.raises(SpecificationError, match="twostep"):
        causalcts.fit(F, small.data, twostep=True)


@pytest.mark.parametrize(
    "formula",
    [
        "cr_velocity",
        "cr_velocity ~ L(x, 2:1)",
        "cr_velocity ~ L(ai_share, 1:)",  # log(x) is valid formulaic syntax since the 0.2 formula layer
        "cr_velocity ~ ai_share + ai_share",
        "cr_velocity ~ cr_velocity",
    ],
)
def test_bad_formulas(small, formula):
    with pytest.raises(SpecificationError):
        causalcts.fit(formula, small.data)


@pytest.mark.parametrize("method", ["within", "diff-gmm", "sys-gmm", "pooled"])
def test_too_few_periods(method):
    sim = simulate(20, 3, seed=1)
    with pytest.raises(TooFewPeriodsError):
        causalcts.fit("cr_velocity ~ L(cr_velocity, 1:3) + ai_share", sim.data, method=method)


def test_more_instruments_than_entities_and_singular_weighting_warn():
    sim = simulate(25, 14, seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        causalcts.fit(F, sim.data, method="diff-gmm", steps=2)
    messages = [str(w.message) for w in caught if issubclass(w.category, InstrumentWarning)]
    assert any(re.search(r"^\d+ instruments exceed the 25 entities", m) for m in messages)
    assert any("two-step weighting matrix is singular" in m for m in messages)


def test_bad_inputs_through_fit(small):
    d = small.data.copy()
    before = d.copy()
    with pytest.raises(DuplicateKeyError):
        causalcts.fit(F, pd.concat([d, d.iloc[[0]]]))
    bad = d.copy()
    bad.loc[5, "ai_share"] = np.nan
    with pytest.raises(MissingValueError, match="'ai_share'"):
        causalcts.fit(F, bad)
    bad = d.copy()
    bad.loc[5, "ai_share"] = 1.5
    with pytest.raises(RangeError, match="'ai_share'"):
        causalcts.fit(F, bad)
    with pytest.raises(CausalCTSError):
        causalcts.fit(F, d.iloc[0:0])
    with pytest.raises(CausalCTSError, match="at least 2"):
        causalcts.fit(F, d[d["team"] == 0])
    pd.testing.assert_frame_equal(d, before)


def test_constant_or_collinear_regressor_is_named(small):
    d = small.data.assign(flat=1.0, twice=2 * small.data["ai_share"])
    for method in ("within", "diff-gmm"):
        with pytest.raises(CollinearityError, match="'flat'"):
            causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share + flat", d, method=method)
        with pytest.raises(CollinearityError, match="'twice'"):
            causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share + twice", d, method=method)


def test_gmm_option_errors(small):
    with pytest.raises(SpecificationError, match="first_lag"):
        causalcts.fit(F, small.data, gmm={"cr_velocity": (3, 2)})
    with pytest.raises(SpecificationError, match=r"\['level_iv'\] do not apply to method='diff-gmm'"):
        causalcts.fit(F, small.data, level_iv=["ai_share"])
    with pytest.raises(SpecificationError, match="steps"):
        causalcts.fit(F, small.data, steps=3)


# ---------------------------------------------------------------- shared interface
@pytest.mark.parametrize("method", registry.names())
def test_contract_every_method_shares_the_results_interface(small, method, tmp_path):
    if method == "bayes":  # tiny run: plumbing only (real sampling is in the slow tests)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            r = causalcts.fit(F, small.data, method="bayes", chains=2, draws=40, tune=40, seed=1, team_effect_draws=2)
    else:
        gmm_family = "collapse" in registry.get(method).options
        r = causalcts.fit(
            F,
            small.data,
            method=method,
            **({"gmm": {"cr_velocity": (2, 4)}, "collapse": True} if gmm_family else {}),
        )
    assert list(r.params.index[:3]) == ["L1.cr_velocity", "ai_share", "rollback_rate"]
    assert r.std_errors.index.equals(r.params.index) and (r.std_errors > 0).all()
    ci = r.conf_int(0.9)
    assert (ci["lower"] < r.params).all() and (r.params < ci["upper"]).all()
    if method != "bayes":  # a posterior has no p-values (they raise; tests/test_results_contract.py)
        assert r.pvalues.between(0, 1).all()
    assert r.nobs > 0 and r.n_entities == 80
    assert "L1.cr_velocity" in r.summary() and "<table" in r._repr_html_()
    assert set(r.to_frame().columns) >= {"estimate", "std_error", "lower", "upper"}
    assert np.isfinite(r.long_run("ai_share")["estimate"])
    back = causalcts.EstimationResults.from_json(r.to_json(tmp_path / "r.json"))
    pd.testing.assert_series_equal(back.params, r.params)
    with pytest.raises(CausalCTSError, match="between 0 and 1"):
        r.conf_int(95)


def test_compare_table(small):
    res = {m: causalcts.fit(F, small.data, method=m) for m in ("within", "jackknife")}
    table = causalcts.compare(res)
    assert list(table.columns) == ["within", "jackknife"]
    assert ("ai_share", "estimate") in table.index


# ---------------------------------------------------------------- 0.2: options, absorbed columns, inference
LS_METHODS = registry.names("least-squares")


@pytest.mark.parametrize("method", LS_METHODS)
@pytest.mark.parametrize(
    "option",
    [
        {"gmm": {"cr_velocity": (2, 4)}},
        {"iv": ["ai_share"]},
        {"collapse": True},
        {"steps": 2},
        {"level_iv": ["ai_share"]},
        {"transform": "fod"},
        {"small": True},
    ],
)
def test_options_that_do_not_apply_raise(small, method, option):
    """Before 0.2 these options were silently ignored by the least-squares methods (same numbers whatever they said)."""
    (name,) = option
    with pytest.raises(SpecificationError, match=rf"\['{name}'\] do not apply to method='{method}', which takes cov"):
        causalcts.fit(F, small.data, method=method, **option)


def test_anderson_hsiao_rejects_gmm_options(small):
    for option in ({"collapse": True}, {"gmm": {"cr_velocity": (2, 2)}}, {"steps": 2}, {"transform": "fod"}):
        with pytest.raises(SpecificationError, match="method='anderson-hsiao', which takes iv, cov, small"):
            causalcts.fit(F, small.data, method="anderson-hsiao", **option)


@pytest.fixture(scope="module")
def wage():
    wage_panel = importlib.import_module("linearmodels.datasets.wage_panel")
    return wage_panel.load()


@pytest.mark.parametrize("method", ["within", "jackknife", "bias-corrected"])
def test_regressor_absorbed_by_two_way_effects_is_refused(wage, method):
    """linearmodels' wage_panel: exper = year + a per-person constant, absorbed by person and year effects; 0.1 gave
    an arbitrary coefficient with SE ~7e12 (jackknife 7e14)."""
    f = "lwage ~ L(lwage, 1) + exper + hours" if method == "bias-corrected" else "lwage ~ exper + hours"
    with pytest.raises(CollinearityError, match="'exper' is absorbed by the entity and period fixed effects"):
        causalcts.fit(f, wage, entity="nr", time="year", method=method)
    # with person effects only exper varies within persons and is identified
    r = causalcts.fit(f, wage, entity="nr", time="year", method=method, time_effects=False)
    assert np.isfinite(r.std_errors["exper"]) and r.std_errors["exper"] < 1


def test_gmm_refuses_columns_the_transformation_absorbs(wage, small):
    with pytest.raises(CollinearityError, match="'exper' is absorbed by the first differences and the period"):
        causalcts.fit(
            "lwage ~ L(lwage, 1) + exper + hours", wage, entity="nr", time="year", gmm={"lwage": (2, 3)}, collapse=True
        )
    # constant within teams but not exactly zero after orthogonal deviations (round-off): still refused
    d = small.data.assign(team_level=0.1 * small.data["team"] + 0.3)
    with pytest.raises(CollinearityError, match="'team_level' is absorbed by the transformation"):
        causalcts.fit(
            "cr_velocity ~ L(cr_velocity, 1) + ai_share + team_level",
            d,
            gmm={"cr_velocity": (2, 4)},
            collapse=True,
            transform="fod",
        )


@pytest.mark.parametrize("method", ["diff-gmm", "sys-gmm", "pooled"])
def test_columns_named_like_period_dummies_are_kept(small, method):
    """0.1 dropped any regressor named t<digits> from GMM output, taking it for a period dummy."""
    rng = np.random.default_rng(0)
    d = small.data.assign(t2=rng.normal(size=len(small.data)), yr1980=rng.normal(size=len(small.data)))
    kw = {"gmm": {"cr_velocity": (2, 4)}, "collapse": True} if method != "pooled" else {}
    r = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share + t2 + yr1980", d, method=method, **kw)
    assert list(r.params.index[:4]) == ["L1.cr_velocity", "ai_share", "t2", "yr1980"]
    assert np.isfinite(r.std_errors[["t2", "yr1980"]]).all()


def test_anderson_hsiao_weak_first_stage_warns_on_public_panels(wage):
    """0.1 returned persistence -227 on wage_panel (no period effects) and -0.54 on Grunfeld without a word."""
    sm = importlib.import_module("statsmodels.api")
    with pytest.warns(InstrumentWarning, match="first-stage F"):
        r = causalcts.fit(
            "lwage ~ L(lwage, 1)", wage, entity="nr", time="year", method="anderson-hsiao", time_effects=False
        )
    assert r.tests["first_stage"]["statistic"] < 10
    grunfeld = sm.datasets.grunfeld.load_pandas().data  # Grunfeld (1958) via statsmodels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = causalcts.fit(
            "invest ~ L(invest, 1) + value + capital", grunfeld, entity="firm", time="year", method="anderson-hsiao"
        )
    assert any("first-stage F" in str(w.message) for w in caught if issubclass(w.category, InstrumentWarning))
    assert r.tests["first_stage"]["statistic"] < 10


def _pyfixest_frame(sim):
    p = Panel(sim.data)
    return p.data.assign(lag=p.lag("cr_velocity").to_numpy()).dropna(subset=["lag"])


@pytest.mark.parametrize("method", ["within", "pooled"])
def test_clustered_inference_matches_pyfixest(method):
    """CRV1 with t(G - 1) as fixest/pyfixest: coefficients, SEs and 95% CIs to 1e-8 (same closed form) with 11
    clusters, where t(n - k) intervals were 13 percent too narrow."""
    pf = importlib.import_module("pyfixest")
    sim = simulate(11, 20, seed=2, missing_weeks=0.05)
    d = _pyfixest_frame(sim)
    fe = "team + week" if method == "within" else "week"
    ref = pf.feols(f"cr_velocity ~ lag + ai_share + rollback_rate | {fe}", data=d, vcov={"CRV1": "team"})
    ours = causalcts.fit(F, sim.data, method=method)
    terms = ["L1.cr_velocity", "ai_share", "rollback_rate"]
    np.testing.assert_allclose(ours.params[terms].to_numpy(), ref.coef().to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(ours.std_errors[terms].to_numpy(), ref.se().to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(ours.conf_int().loc[terms].to_numpy(), ref.confint().to_numpy(), rtol=1e-8)
    assert (ours.dist, ours.df_resid) == ("t", 10.0)


@pytest.mark.parametrize("method", ["jackknife", "bias-corrected"])
def test_corrections_use_t_with_clusters_minus_one(method):
    sim = simulate(11, 20, seed=2)
    r = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method=method)
    assert (r.dist, r.df_resid) == ("t", 10.0)
    from scipy import stats

    width = (r.conf_int()["upper"] - r.conf_int()["lower"]) / (2 * r.std_errors)
    np.testing.assert_allclose(width.to_numpy(), stats.t.ppf(0.975, 10), rtol=1e-12)


def test_unadjusted_keeps_classical_degrees_of_freedom(small):
    r = causalcts.fit(F, small.data, method="within", cov="unadjusted")
    assert r.df_resid == r.nobs - 3 - r.info["absorbed"]


def test_gmm_instrument_selection_and_many_instrument_warning():
    """More than 500 planned instrument columns warns before the run; the one-pass selection keeps exactly the
    independent columns: uncollapsed lags 2.. of 40 weeks plan t - 1 columns for period t, but those columns are
    non-zero only in period t's 30 rows, so period t adds min(t - 1, 30) independent ones; plus 2 IV-style."""
    sim = simulate(30, 40, seed=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = causalcts.fit(F, sim.data, method="diff-gmm", time_effects=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, InstrumentWarning)]
    assert any(re.search(r"plans \d+ instrument columns \(more than 500\)", m) for m in messages)
    assert r.n_instruments == sum(min(t - 1, 30) for t in range(2, 40)) + 2


def test_dropna_drops_rows_with_a_warning_that_counts_them(small):
    d = small.data.copy()
    d.loc[[5, 17, 40], "ai_share"] = np.nan
    d.loc[[7], "pages"] = np.nan  # an unused column: its row stays
    before = d.copy()
    with pytest.warns(causalcts.DataWarning, match=r"Dropped 3 of 960 rows.*3 in 'ai_share'"):
        r = causalcts.fit(F, d, method="within", dropna=True)
    pd.testing.assert_frame_equal(d, before)  # the caller's frame is untouched
    ref = causalcts.fit(F, small.data.drop(index=[5, 17, 40]), method="within")
    pd.testing.assert_series_equal(r.params, ref.params)
    assert r.spec["dropna"] is True
    with pytest.raises(MissingValueError, match="dropna=True"):
        causalcts.fit(F, d, method="within")


@pytest.mark.parametrize("method", [m for m in registry.names() if registry.get(m).family != "bayes"])
def test_spec_refits_and_residuals_are_indexed_by_entity_and_time(small, method):
    kw = {"gmm": {"cr_velocity": (2, 4)}, "collapse": True, "steps": 2} if method in ("diff-gmm", "sys-gmm") else {}
    r = causalcts.fit(F, small.data, method=method, **kw)
    again = causalcts.fit(**r.spec, data=small.data)
    pd.testing.assert_series_equal(again.params, r.params, check_exact=True)
    assert r.resid.index.names == ["team", "week"] and r.resid.index.is_unique
    assert r.fitted.index.equals(r.resid.index)
    expected = r.info["n_transformed_obs"] if registry.get(method).family == "gmm" else r.nobs
    assert len(r.resid) == expected
    if registry.get(method).family == "least-squares":
        y = small.data.set_index(["team", "week"])["cr_velocity"].loc[r.resid.index]
        np.testing.assert_allclose((r.fitted + r.resid).to_numpy(), y.to_numpy(), rtol=1e-12)


def test_within_residuals_equal_dummy_variable_residuals(small):
    r = causalcts.fit(F, small.data, method="within")
    p = Panel(small.data)
    d = p.data.assign(lag=p.lag("cr_velocity").to_numpy()).dropna(subset=["lag"])
    X = pd.concat(
        [
            d[["lag", "ai_share", "rollback_rate"]],
            pd.get_dummies(d["team"], prefix="i", dtype=float),
            pd.get_dummies(d["week"], prefix="w", drop_first=True, dtype=float),
        ],
        axis=1,
    ).to_numpy()
    beta, *_ = np.linalg.lstsq(X, d["cr_velocity"].to_numpy(), rcond=None)
    e = pd.Series(d["cr_velocity"].to_numpy() - X @ beta, index=pd.MultiIndex.from_frame(d[["team", "week"]]))
    np.testing.assert_allclose(r.resid.to_numpy(), e.loc[r.resid.index].to_numpy(), atol=1e-10)


def test_gmm_residuals_are_the_first_differenced_equation(small):
    r = causalcts.fit(F, small.data, method="diff-gmm", gmm={"cr_velocity": (2, 4)}, collapse=True, time_effects=False)
    p = Panel(small.data)
    dy = pd.Series(p.diff("cr_velocity").to_numpy(), index=pd.MultiIndex.from_frame(p.data[["team", "week"]]))
    dX = np.column_stack(
        [p.diff(p.lag("cr_velocity").to_numpy()).to_numpy(), p.diff("ai_share").to_numpy(), p.diff("rollback_rate")]
    )
    e = dy.to_numpy() - dX @ r.params.to_numpy()
    e = pd.Series(e, index=dy.index).loc[r.resid.index]
    np.testing.assert_allclose(r.resid.to_numpy(), e.to_numpy(), atol=1e-12)


def test_old_method_list_points_to_the_registry():
    import causalcts.estimators.api as est

    with pytest.raises(AttributeError, match=r"registry\.names\(\)"):
        est.ALL_METHODS  # noqa: B018
