"""One results contract for every family: each registered method of ``causalcts.fit`` and ``causalcts.mixed``.

Every result is fitted once on the same small simulated panel (60 teams, 10 weeks, seed 1) and checked
against the shared interface: types and index alignment, a symmetric positive semi-definite covariance,
intervals that widen with the level, immutability, summaries (text, HTML, LaTeX) that name every term,
lossless JSON round trips (netCDF for posterior draws), a single intercept label, and ``compare`` across
families. Bayesian fits use tiny runs (2 chains x 100 draws after 100 tuning steps): plumbing only, so
a ConvergenceWarning is expected there and nowhere else.

The method list comes from ``causalcts.registry`` when that module exists (else from
``causalcts.estimators.api.ALL_METHODS``); a broken registry fails this test instead of being skipped.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import pickle
import warnings
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import causalcts
from causalcts.bayes.results import BayesResults, pointwise_loglik
from causalcts.errors import CausalCTSError, ConvergenceWarning, InstrumentWarning
from causalcts.results import EstimationResults, Summary, compare, load

if importlib.util.find_spec("causalcts.registry") is not None:
    from causalcts import registry

    METHODS = tuple(registry.names())
    BAYES = {m for m in METHODS if registry.get(m).family == "bayes"}
else:  # pragma: no cover - until the registry lands
    from causalcts.estimators.api import ALL_METHODS as METHODS

    BAYES = {"bayes"}

F = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
MIXED = {"mixed-reml": "reml", "mixed-nuts": "nuts"}
MIXED_FORMULA = "cr_velocity ~ ai_share + (1 | team)"
TINY = dict(chains=2, draws=100, tune=100, seed=1)
NAMES = (*METHODS, *MIXED)
LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)
# round-off of the sandwich/GMM matrix products: relative to the largest entry, far below any real asymmetry
SYM_RTOL = 1e-10

_CACHE: dict[str, tuple[EstimationResults, list[warnings.WarningMessage]]] = {}


@pytest.fixture(scope="module")
def sim():
    return causalcts.simulate(n_teams=60, n_weeks=10, seed=1)


def _fit(name: str, data: pd.DataFrame):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if name in MIXED:
            kw = TINY if MIXED[name] == "nuts" else {}
            res = causalcts.mixed(MIXED_FORMULA, data, method=MIXED[name], **kw)
        elif name in BAYES:
            res = causalcts.fit(F, data, method=name, **TINY)
        else:
            res = causalcts.fit(F, data, method=name)
    return res, [w for w in caught if issubclass(w.category, Warning)]


def _is_posterior(name: str) -> bool:
    return name in BAYES or name == "mixed-nuts"


@pytest.fixture
def fitted(sim, request):
    name = request.param
    if name not in _CACHE:
        _CACHE[name] = _fit(name, sim.data)
    return name, *_CACHE[name]


def _same(a, b) -> bool:
    """Equal values and types, NaN equal to NaN, recursively through mappings and sequences."""
    if hasattr(a, "items"):
        return hasattr(b, "items") and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float, np.number)):  # NumPy scalars come back as Python numbers of equal value
        if not isinstance(b, (int, float, np.number)) or isinstance(a, bool) != isinstance(b, bool):
            return False
        return bool(a == b) or bool(np.isnan(a) and np.isnan(b))
    return type(a) is type(b) and a == b


def _latex(term: str) -> str:
    return term.replace("_", r"\_")


@pytest.mark.parametrize("fitted", NAMES, indirect=True)
def test_warnings_are_the_expected_ones(fitted):
    name, res, caught = fitted
    cats = {w.category for w in caught if w.category.__module__.startswith("causalcts")}
    if _is_posterior(name):
        # a tiny run may or may not converge; when it does not, the user must have been warned
        assert res.converged or ConvergenceWarning in cats
        assert cats <= {ConvergenceWarning}
    else:
        assert cats <= {InstrumentWarning}, [str(w.message) for w in caught]


@pytest.mark.parametrize("fitted", NAMES, indirect=True)
def test_types_and_alignment(fitted):
    name, res, _ = fitted
    assert isinstance(res, EstimationResults)
    assert isinstance(res, BayesResults) == (name in MIXED or name in BAYES)
    terms = res.params.index
    assert isinstance(res.params, pd.Series) and res.params.dtype == float and terms.is_unique
    assert isinstance(res.std_errors, pd.Series) and res.std_errors.index.equals(terms)
    assert (res.std_errors > 0).all() and np.isfinite(res.params).all()
    assert isinstance(res.cov, pd.DataFrame)
    assert res.cov.index.equals(terms) and res.cov.columns.equals(terms)
    assert isinstance(res.nobs, int) and res.nobs > 0
    assert isinstance(res.n_entities, int) and res.n_entities == 60
    assert isinstance(res.method, str) and isinstance(res.formula, str) and res.formula
    assert isinstance(res.cov_type, str)
    for mapping in (res.spec, res.info, res.tests):
        assert hasattr(mapping, "items")
    ci = res.conf_int(0.95)
    assert list(ci.columns) == ["lower", "upper"] and ci.index.equals(terms)
    frame = res.to_frame(0.9)
    assert frame.index.equals(terms) and {"estimate", "std_error", "lower", "upper"} <= set(frame.columns)
    if res.resid is not None:
        assert isinstance(res.resid.index, pd.MultiIndex) and res.resid.index.nlevels == 2
        assert res.fitted is not None and res.fitted.index.equals(res.resid.index)


@pytest.mark.parametrize("fitted", NAMES, indirect=True)
def test_one_intercept_label(fitted):
    _, res, _ = fitted
    for label in ("const", "_cons", "(Intercept)", "intercept"):
        assert label not in res.params.index
    if res.method in ("pooled", "sys-gmm", "reml", "nuts", "bayes"):  # the models with a constant
        assert "Intercept" in res.params.index


@pytest.mark.parametrize("fitted", NAMES, indirect=True)
def test_cov_is_symmetric_psd_and_matches_std_errors(fitted):
    _, res, _ = fitted
    V = res.cov.to_numpy()
    scale = np.abs(V).max()
    np.testing.assert_allclose(V, V.T, rtol=0, atol=SYM_RTOL * scale)
    eig = np.linalg.eigvalsh((V + V.T) / 2)
    assert eig.min() >= -SYM_RTOL * eig.max()
    if True:
        # std_errors are the square roots of the diagonal (posterior SD and covariance from the same draws);
        # 1e-8 relative covers the round-off of the two routes
        np.testing.assert_allclose(res.std_errors.to_numpy(), np.sqrt(np.diag(V)), rtol=1e-8)


@pytest.mark.parametrize("fitted", NAMES, indirect=True)
def test_intervals_widen_with_the_level(fitted):
    _, res, _ = fitted
    cis = [res.conf_int(level) for level in LEVELS]
    for narrow, wide in zip(cis, cis[1:], strict=False):
        assert (wide["lower"] <= narrow["lower"]).all() and (narrow["upper"] <= wide["upper"]).all()
    assert (cis[0]["lower"] < cis[-1]["upper"]).all()
    inside = (cis[-1]["lower"] <= res.params) & (res.params <= cis[-1]["upper"])
    assert inside.all()
    with pytest.raises(CausalCTSError, match="between 0 and 1"):
        res.conf_int(95)


@pytest.mark.parametrize("fitted", NAMES, indirect=True)
def test_results_are_immutable(fitted):
    _, res, _ = fitted
    for field in ("params", "std_errors", "cov", "nobs", "method", "spec"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(res, field, None)
    before = res.params.copy(), res.std_errors.copy(), res.cov.copy()
    p, s, c = res.params, res.std_errors, res.cov
    p.iloc[0] = 1e9
    s.iloc[0] = 1e9
    c.iloc[0, 0] = 1e9
    pd.testing.assert_series_equal(res.params, before[0])
    pd.testing.assert_series_equal(res.std_errors, before[1])
    pd.testing.assert_frame_equal(res.cov, before[2])
    with pytest.raises(TypeError):
        res.info["added"] = 1
    info = dict(res.info)
    for value in info.values():
        if isinstance(value, (list, dict)):
            value.clear() if isinstance(value, dict) else value.append("x")
    assert "added" not in res.info
    if isinstance(res, BayesResults) and res.cov_re is not None:
        cr = res.cov_re
        cr.iloc[0, 0] = -1.0
        assert res.cov_re.iloc[0, 0] > 0


@pytest.mark.parametrize("fitted", NAMES, indirect=True)
def test_summary_renders_every_term_three_ways(fitted):
    name, res, _ = fitted
    s = res.summary()
    assert isinstance(s, Summary) and str(res) == str(s)
    text, html, latex = str(s), s._repr_html_(), s.as_latex()
    assert html == s.as_html() and html == res._repr_html_()
    assert latex.startswith(r"\begin{tabular}") and r"\toprule" in latex and latex.endswith(r"\end{tabular}")
    for term in res.params.index:
        assert term in text and term in html and _latex(term) in latex
    for item in (res.method, f"Observations: {res.nobs}", f"Entities: {res.n_entities}", res.cov_type):
        assert item in text
    assert res.formula in text and "Inference:" in text
    if _is_posterior(name):
        # a posterior has no z statistics or p-values: mean, sd, equal-tailed interval, R-hat, ESS instead (the
        # frequentist exogeneity checks on the data, shown after the estimates, keep their p-values)
        estimates = text.split("Exogeneity checks")[0]
        assert "equal-tailed" in estimates and "pvalue" not in estimates and " z " not in estimates
        for col in ("mean", "sd", "r_hat", "ess_bulk", "ess_tail"):
            assert col in text
    else:
        assert "pvalue" in text
        if res.dist == "t" and res.df_resid:
            assert f"t with {res.df_resid:g} df" in text
        else:
            assert "z (normal)" in text


@pytest.mark.parametrize("fitted", NAMES, indirect=True)
def test_json_round_trip_is_lossless(fitted, tmp_path):
    name, res, _ = fitted
    path = res.to_json(tmp_path / f"{name}.json")
    json.loads(path.read_text())  # strict JSON: no NaN or Infinity literals
    back = load(path)
    assert type(back) is type(res)
    assert back.equals(res) and res.equals(back)
    same = EstimationResults.from_json(path)
    assert type(same) is type(res) and same.equals(res)
    pd.testing.assert_series_equal(back.params, res.params, check_exact=True)
    pd.testing.assert_frame_equal(back.cov, res.cov, check_exact=True)
    for field in dataclasses.fields(res):
        a, b = getattr(res, field.name), getattr(back, field.name)
        if isinstance(a, pd.Series):
            pd.testing.assert_series_equal(a, b, check_exact=True)
        elif isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        elif field.name != "idata":
            assert _same(a, b), field.name
    if isinstance(res, BayesResults):
        assert (back.cov_re is None) == (res.cov_re is None)
        assert back.converged is res.converged and back.llf == res.llf and back.scale == res.scale
        if res.idata is not None:
            assert path.with_suffix(".nc").exists()
            assert "log_likelihood" in back.idata.groups()
            pd.testing.assert_frame_equal(back.conf_int(0.9), res.conf_int(0.9), check_exact=True)


def _same_and_read_only(res, back) -> None:
    """``back`` equals ``res`` field by field and is as read-only as ``res``."""
    assert type(back) is type(res) and back is not res
    assert back.equals(res) and res.equals(back)

    def writeable(obj, name):
        value = object.__getattribute__(obj, name)
        if isinstance(value, (pd.Series, pd.DataFrame)):
            value = value.values
        return value.flags.writeable if isinstance(value, np.ndarray) else None

    for f in dataclasses.fields(res):
        assert writeable(back, f.name) == writeable(res, f.name), f.name
    assert writeable(back, "params") is False and writeable(back, "cov") is False
    for name in ("tests", "info", "spec"):
        assert isinstance(object.__getattribute__(back, name), MappingProxyType)
        with pytest.raises(TypeError):
            getattr(back, name)["added"] = 1
    for inner in back.tests.values():
        with pytest.raises(TypeError):
            inner["added"] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.nobs = 0
    p = back.params
    p.iloc[0] = 1e9
    pd.testing.assert_series_equal(back.params, res.params, check_exact=True)


@pytest.mark.parametrize("fitted", NAMES, indirect=True)
def test_pickle_and_deepcopy_round_trip(fitted):
    """joblib, multiprocessing and caches pickle results in memory (files stay JSON/netCDF)."""
    _, res, _ = fitted
    _same_and_read_only(res, pickle.loads(pickle.dumps(res)))
    _same_and_read_only(res, copy.deepcopy(res))
    if isinstance(res, BayesResults) and res.idata is not None:
        assert "log_likelihood" in pickle.loads(pickle.dumps(res)).idata.groups()


def test_pickle_and_deepcopy_of_att_gt_and_pooled_results(tmp_path):
    from causalcts.bayes.pooling import PooledResults, pool
    from causalcts.did.att_gt import ATTgtResults, att_gt

    data = Path(__file__).parent / "data"
    mpdta = pd.read_csv(data / "mpdta.csv")
    att = att_gt(mpdta, outcome="lemp", entity="countyreal", time="year", cohort="first.treat")
    schools = pd.read_csv(data / "baggr_schools.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pooled = pool(schools, estimate="tau", std_error="se", label="group", chains=2, draws=30, tune=30, seed=7)
    assert isinstance(att, ATTgtResults) and isinstance(pooled, PooledResults)
    for res in (att, pooled, load(pooled.to_json(tmp_path / "pooled.json"))):
        for back in (pickle.loads(pickle.dumps(res)), copy.deepcopy(res)):
            _same_and_read_only(res, back)
    back = pickle.loads(pickle.dumps(att))
    pd.testing.assert_frame_equal(back.att, att.att, check_exact=True)
    assert not object.__getattribute__(back, "influence").flags.writeable
    back = copy.deepcopy(pooled)
    pd.testing.assert_frame_equal(back.effects(0.9), pooled.effects(0.9), check_exact=True)


def test_a_changed_field_is_not_equal(sim, tmp_path):
    res, _ = _CACHE.get("within") or _fit("within", sim.data)
    other = dataclasses.replace(res, nobs=res.nobs + 1)
    assert not other.equals(res)
    path = res.to_json(tmp_path / "r.json")
    d = json.loads(path.read_text())
    d["params"]["__series__"][0] += 1e-12
    path.write_text(json.dumps(d))
    assert not load(path).equals(res)


def test_bayesian_results_refuse_tests_and_give_posterior_intervals(sim):
    for name in (*sorted(BAYES), "mixed-nuts"):
        if name not in _CACHE:
            _CACHE[name] = _fit(name, sim.data)
        res = _CACHE[name][0]
        for attr in ("pvalues", "tstats"):
            with pytest.raises(CausalCTSError, match="posterior"):
                getattr(res, attr)
        draws = res.idata.posterior["beta"]
        ci = res.conf_int(0.8)
        for term in res.params.index:
            vals = draws.sel(term=term).values.ravel()
            # (1 - 0.8) / 2 is 0.09999999999999998 in float64: the quantile moves by round-off only
            assert ci.loc[term, "lower"] == pytest.approx(np.quantile(vals, 0.1), rel=1e-12)
            assert ci.loc[term, "upper"] == pytest.approx(np.quantile(vals, 0.9), rel=1e-12)
            assert res.params[term] == pytest.approx(vals.mean(), rel=1e-12)  # mean of the same draws


def test_log_likelihood_group_is_each_teams_marginal_likelihood(sim):
    """Independent route: the multivariate normal density of each team's rows, y_i ~ N(X b, s2 I + Z S Z')."""
    if "mixed-nuts" not in _CACHE:
        _CACHE["mixed-nuts"] = _fit("mixed-nuts", sim.data)
    res = _CACHE["mixed-nuts"][0]
    ll = res.idata.log_likelihood["cr_velocity"]
    assert ll.dims == ("chain", "draw", "team") and ll.sizes["team"] == 60
    post = res.idata.posterior
    data = sim.data.sort_values(["team", "week"])
    for chain, draw in ((0, 0), (1, 57)):
        beta = post["beta"].sel(chain=chain, draw=draw).values
        s2 = float(post["sigma"].sel(chain=chain, draw=draw)) ** 2
        tau2 = float(post["re_cov"].sel(chain=chain, draw=draw).values[0, 0])
        for k, (team, rows) in enumerate(data.groupby("team", sort=True)):
            if k % 15:
                continue
            X = np.c_[np.ones(len(rows)), rows["ai_share"].to_numpy()]
            cov = s2 * np.eye(len(rows)) + tau2
            ref = stats.multivariate_normal(X @ beta, cov).logpdf(rows["cr_velocity"].to_numpy())
            # 1e-9 relative: two float64 routes (Woodbury on sufficient statistics vs a dense Cholesky)
            got = float(ll.sel(chain=chain, draw=draw, team=str(team)))
            assert got == pytest.approx(ref, rel=1e-9)


def test_pointwise_loglik_sums_over_random_slopes_too():
    rng = np.random.default_rng(5)
    codes = np.repeat(np.arange(4), 5)
    X = np.c_[np.ones(20), rng.normal(size=20)]
    Z = X.copy()
    y = rng.normal(size=20)
    beta, s2 = np.array([[0.3, -0.2]]), np.array([0.7])
    Sigma = np.array([[[0.5, 0.1], [0.1, 0.2]]])
    ll = pointwise_loglik(y, X, Z, codes, beta, s2, Sigma)[0]
    for g in range(4):
        m = codes == g
        ref = stats.multivariate_normal(X[m] @ beta[0], s2[0] * np.eye(5) + Z[m] @ Sigma[0] @ Z[m].T).logpdf(y[m])
        assert ll[g] == pytest.approx(ref, rel=1e-10)  # float64 round-off only


def test_compare_works_across_families(sim):
    for name in NAMES:
        if name not in _CACHE:
            _CACHE[name] = _fit(name, sim.data)
    table = compare({name: _CACHE[name][0] for name in NAMES})
    assert list(table.columns) == list(NAMES)
    for name in NAMES:
        res = _CACHE[name][0]
        assert table.loc[("ai_share", "estimate"), name] == res.params["ai_share"]
        assert table.loc[("ai_share", "std_errors"), name] == res.std_errors["ai_share"]


def test_legacy_json_still_loads(tmp_path):
    legacy = {
        "method": "within",
        "formula": "y ~ x",
        "cov_type": "clustered by entity",
        "nobs": 10,
        "n_entities": 2,
        "n_instruments": 0,
        "params": {"x": 0.5},
        "std_errors": {"x": 0.1},
        "cov": [[0.01]],
        "tests": {},
        "dist": "t",
        "df_resid": 1.0,
        "outcome_lags": [],
        "info": {},
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(legacy))
    res = load(path)
    assert res.params["x"] == 0.5 and res.inference == "t with 1 df"


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(CausalCTSError, match="No results file"):
        load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CausalCTSError, match="not a causalcts results JSON"):
        load(bad)
    bad.write_text(json.dumps({"format": "causalcts-results/2", "class": "Nope"}))
    with pytest.raises(CausalCTSError, match="Unknown results class 'Nope'"):
        load(bad)


@pytest.mark.parametrize(
    "content",
    [
        {"a": 1},
        [1, 2],
        "text",
        3,
        None,
        {"params": {"x": 0.5}},
        {"format": "causalcts-results/2", "params": {}},
        {"format": "other/1"},
        {"format": "causalcts-results/2", "class": ["x"]},
    ],
)
def test_valid_json_that_is_not_a_results_file_is_a_clear_error(tmp_path, content):
    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps(content))
    with pytest.raises(CausalCTSError, match="junk.json.*is not a causalcts results file"):
        load(junk)


def test_round_trip_keeps_dates_strings_nan_and_generators(tmp_path):
    """Panels keyed by string teams and dated weeks, NaN/inf values and a Generator seed survive JSON exactly."""
    idx = pd.MultiIndex.from_arrays(
        [pd.Index(["t1", "t1", "t2"], dtype="str"), pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-01"])],
        names=["team", "week"],
    )
    rng = np.random.default_rng(7)
    rng.normal()
    res = EstimationResults(
        params=pd.Series({"x": 0.5, "Intercept": 1.0}),
        std_errors=pd.Series({"x": 0.1, "Intercept": 0.2}),
        cov=pd.DataFrame([[0.01, 0.0], [0.0, 0.04]], index=["x", "Intercept"], columns=["x", "Intercept"]),
        nobs=3,
        n_entities=2,
        method="pooled",
        formula="y ~ x",
        cov_type="unadjusted",
        tests={"ar2": {"statistic": float("nan"), "df": 1, "pvalue": float("inf")}},
        info={"lags": (2, None), 3: "int key", "nested": {"a": [1, (2, 3)]}},
        spec={"seed": rng, "gmm": {"y": (2, 4)}},
        resid=pd.Series([0.1, -0.2, np.nan], index=idx),
        fitted=pd.Series([1.0, 2.0, 3.0], index=idx),
    )
    back = load(res.to_json(tmp_path / "r.json"))
    assert back.equals(res)
    pd.testing.assert_series_equal(back.resid, res.resid, check_exact=True)
    assert back.resid.index.dtypes.tolist() == res.resid.index.dtypes.tolist()
    assert back.info["lags"] == (2, None) and back.info[3] == "int key" and back.info["nested"]["a"][1] == (2, 3)
    assert back.spec["seed"].normal() == res.spec["seed"].normal()  # same generator state
    assert np.isnan(back.tests["ar2"]["statistic"]) and back.tests["ar2"]["pvalue"] == np.inf


@pytest.mark.parametrize("dropna", [False, True])
def test_fit_on_raw_telemetry_points_to_derive(sim, dropna):
    """A metric the data lacks but metrics.derive computes: the error keeps its message and says how to derive it."""
    from causalcts.errors import MissingColumnError

    raw = sim.data.drop(columns=["cr_velocity"])
    before = raw.copy()
    with pytest.raises(MissingColumnError) as info:
        causalcts.fit(F, raw, method="within", dropna=dropna)
    msg = str(info.value)
    assert "not in the data" in msg and "'cr_velocity'" in msg
    assert "derive it with causalcts.metrics.derive(df, ['cr_velocity'])" in msg
    pd.testing.assert_frame_equal(raw, before)
    # a plain typo is not a metric: no hint
    with pytest.raises(MissingColumnError) as info:
        causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_shar", sim.data, method="within", dropna=dropna)
    assert "derive" not in str(info.value)
