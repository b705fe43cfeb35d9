r"""The exogeneity tests' computation, shared by ``causalcts.fit``, the diagnostics and the rollout workflow.

Every test is a cluster-robust Wald test of some coefficients in a within (fixed-effects) regression, with the
CRV1 covariance of :func:`causalcts.inference.cluster.crv1` (fixest's small-sample rule, the same as the within
estimator of :func:`causalcts.fit`) and an :math:`F(q, G - 1)` reference distribution:

* :func:`lead_test`: the strict-exogeneity lead test of a regressor (Wooldridge 2010, sec. 10.7.1);
* :func:`response_test`: does a control respond to the treatment (the treatment and its lag, jointly);
* :func:`feedback_test`: does the treatment respond to the past outcome (its lag and the outcome's lag as
  regressors, the outcome's lag tested).

:func:`exogeneity_rows` runs the first two for every regressor and control of a formula; the public entry with
argument checks and the mathematics is :func:`causalcts.diagnostics.check_exogeneity`. This module sits in the
estimators layer so that :func:`causalcts.fit` (layer 4) can attach the tests to every dynamic-panel result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from causalcts.data.design import build_design
from causalcts.data.formula import formula_spec
from causalcts.data.panel import Panel, lag_name
from causalcts.errors import CausalCTSError, MissingColumnError, SpecificationError
from causalcts.estimators.api import used_columns
from causalcts.estimators.linear import check_not_absorbed, within_transform
from causalcts.inference.cluster import crv1

__all__ = [
    "COLUMNS",
    "THRESHOLDS",
    "exogeneity_rows",
    "feedback_test",
    "has_outcome_lag",
    "lead_test",
    "regressors",
    "response_test",
    "verdict",
]

#: p-value thresholds of the verdicts: below the first "fail", below the second "warn", otherwise "pass".
THRESHOLDS = (0.05, 0.10)
#: Columns of the tables of the exogeneity tests (:func:`causalcts.diagnostics.check_exogeneity`).
COLUMNS = ["test", "statistic", "df", "pvalue", "verdict", "coefficient", "detail"]


def verdict(pvalue: float) -> str:
    """``"fail"`` below 0.05, ``"warn"`` below 0.10, ``"pass"`` otherwise, ``"n/a"`` for a missing p-value.

    Examples
    --------
    >>> from causalcts.estimators.exogeneity import verdict
    >>> verdict(0.01), verdict(0.07), verdict(0.5), verdict(float("nan"))
    ('fail', 'warn', 'pass', 'n/a')
    """
    if pvalue is None or not np.isfinite(pvalue):
        return "n/a"
    return "fail" if pvalue < THRESHOLDS[0] else "warn" if pvalue < THRESHOLDS[1] else "pass"


def regressors(formula: str) -> list[str]:
    """The variables of the formula's right-hand side, the outcome (its lags) left out, in formula order.

    Examples
    --------
    >>> from causalcts.estimators.exogeneity import regressors
    >>> regressors("y ~ L(y, 1) + x + L(z, 0:1)")
    ['x', 'z']
    """
    fspec = formula_spec(formula)
    return [v for v in dict.fromkeys(t.variable for t in fspec.terms) if v != fspec.outcome]


def has_outcome_lag(formula: str) -> bool:
    """Whether a lag of the outcome is a regressor (a dynamic panel).

    Examples
    --------
    >>> from causalcts.estimators.exogeneity import has_outcome_lag
    >>> has_outcome_lag("y ~ L(y, 1) + x"), has_outcome_lag("y ~ x")
    (True, False)
    """
    fspec = formula_spec(formula)
    return any(t.variable == fspec.outcome and t.lag > 0 for t in fspec.terms)


# ---------------------------------------------------------------------------------------------- data and clusters
def _panel(data, entity: str, time: str, columns: Sequence[str]) -> tuple[Panel, pd.DataFrame | None]:
    if isinstance(data, Panel):
        return data, None
    if not isinstance(data, pd.DataFrame):
        raise CausalCTSError(f"data must be a DataFrame or a Panel, not {type(data).__name__}.")
    missing = [c for c in (entity, time, *columns) if c not in data.columns]
    if missing:
        raise MissingColumnError(f"The checks use {missing}, not in the data; columns are {list(data.columns)}.")
    return Panel(data, entity=entity, time=time, columns=list(columns)), data


def _cluster_labels(panel: Panel, frame: pd.DataFrame | None, cluster: str | None) -> np.ndarray:
    if cluster is None or cluster == panel.entity:
        return np.asarray(panel.entity_codes)
    source = panel.data if cluster in panel.data.columns else frame
    if source is None or cluster not in source.columns:
        raise MissingColumnError(f"cluster={cluster!r} is not a column of the data.")
    keys = pd.MultiIndex.from_frame(source[[panel.entity, panel.time]])
    lookup = pd.Series(source[cluster].to_numpy(), index=keys)
    here = pd.MultiIndex.from_frame(panel.data[[panel.entity, panel.time]])
    values = lookup.reindex(here)
    if values.isna().any():
        raise SpecificationError(f"cluster={cluster!r} is missing for {int(values.isna().sum())} rows.")
    return pd.factorize(values)[0]


# ---------------------------------------------------------------------------------------------- the Wald test
@dataclass(frozen=True)
class _Within:
    """A check regression's design on its estimation rows, before and after the within transformation."""

    formula: str
    names: list[str]
    X: np.ndarray
    yt: np.ndarray
    Xt: np.ndarray
    codes: np.ndarray
    periods: np.ndarray
    clusters: np.ndarray
    time_effects: bool


def _within(formula: str, panel: Panel, clusters: np.ndarray, time_effects: bool, rows=None) -> _Within:
    d = build_design(formula, panel)
    ok = np.isfinite(d.y) & np.all(np.isfinite(d.X), axis=1) if rows is None else rows(d)
    y, X, codes, periods, cl = d.y[ok], d.X[ok], d.codes[ok], d.periods[ok], clusters[ok]
    if len(y) <= X.shape[1] + len(np.unique(codes)):
        raise SpecificationError(f"Too few rows ({len(y)}) for the check regression {formula!r}.")
    M, _ = within_transform(np.column_stack([y, X]), codes, periods, time_effects)
    return _Within(formula, list(d.names), X, M[:, 0], M[:, 1:], codes, periods, cl, time_effects)


def _wald_test(w: _Within, columns: list[str], tested: list[str]) -> dict[str, Any]:
    """OLS of ``w``'s outcome on ``columns`` (within-transformed), CRV1; joint F test of ``tested``."""
    j = [w.names.index(c) for c in columns]
    X, Xt = w.X[:, j], w.Xt[:, j]
    check_not_absorbed(X, Xt, columns, "entity and period" if w.time_effects else "entity")
    XtX_inv = np.linalg.inv(Xt.T @ Xt)
    b = XtX_inv @ (Xt.T @ w.yt)
    effects = [w.codes, w.periods] if w.time_effects else [w.codes]
    V = crv1(Xt, w.yt - Xt @ b, w.clusters, bread=XtX_inv, fixed_effects=effects)
    idx = [columns.index(t) for t in tested]
    bt, Vt = b[idx], V.cov[np.ix_(idx, idx)]
    q, G = len(idx), V.n_clusters
    F = float(bt @ np.linalg.solve(Vt, bt)) / q
    return {
        "statistic": F,
        "df": f"F({q}, {G - 1})",
        "pvalue": float(stats.f.sf(F, q, G - 1)),
        "coefficient": float(bt[0]),
        "nobs": int(len(w.yt)),
    }


def wald(formula: str, panel: Panel, clusters: np.ndarray, tested: list[str], time_effects: bool) -> dict[str, Any]:
    """Within regression of ``formula`` on ``panel``, CRV1 by ``clusters``; joint F test of the ``tested`` terms.

    ``clusters`` holds one label per row of ``panel``. Returns ``statistic`` (Wald F), ``df`` (``"F(q, G-1)"``),
    ``pvalue``, ``coefficient`` (of the first tested term) and ``nobs``.
    """
    w = _within(formula, panel, clusters, time_effects)
    return _wald_test(w, w.names, tested)


def _shared_lead_design(formula: str, panel: Panel, clusters: np.ndarray, xs: list[str], time_effects: bool):
    """One design holding every regressor's lead, when each lead regression would use the same rows (always, on a
    panel without missing values, unless a transformed term such as ``np.log(x)`` is not finite at some lead);
    None otherwise. Each lead test is then an OLS on a subset of its columns: the within transformation acts
    column by column, so the result is that of the lead's own regression, at the cost of one design."""
    leads = [lag_name(x, -1) for x in xs]
    same: list[bool] = []

    def rows(d):
        finite = np.isfinite(d.X)
        base = np.isfinite(d.y) & np.all(finite[:, [i for i, n in enumerate(d.names) if n not in leads]], axis=1)
        masks = [base & finite[:, d.names.index(lead)] for lead in leads]
        same.append(all(np.array_equal(m, masks[0]) for m in masks))
        return masks[0]

    rhs = " + ".join(f"F({x}, 1)" for x in xs)
    w = _within(f"{formula} + {rhs}", panel, clusters, time_effects, rows=rows)
    return w if same[0] else None


def _row(variable: str, test: str, out: dict[str, Any], detail: str) -> dict[str, Any]:
    return {
        "variable": variable,
        "test": test,
        "statistic": float(out["statistic"]),
        "df": str(out["df"]),
        "pvalue": float(out["pvalue"]),
        "verdict": verdict(out["pvalue"]),
        "coefficient": float(out.get("coefficient", np.nan)),
        "detail": detail,
    }


def _failed(variable: str, test: str, err: Exception) -> dict[str, Any]:
    out = {"statistic": np.nan, "df": "", "pvalue": np.nan, "coefficient": np.nan}
    return _row(variable, test, out, f"not computed: {err}")


def lead_test(formula: str, panel: Panel, clusters: np.ndarray, x: str, *, time_effects: bool = True) -> dict:
    """Strict-exogeneity lead test of ``x``: ``F(x, 1)`` added to the within regression of ``formula``, tested.

    Examples
    --------
    >>> import causalcts, numpy as np
    >>> from causalcts.estimators.exogeneity import lead_test
    >>> sim = causalcts.simulate(n_teams=60, n_weeks=8, feedback=2.0, seed=1)
    >>> panel = causalcts.Panel(sim.data, columns=["cr_velocity", "ai_share"])
    >>> row = lead_test("cr_velocity ~ L(cr_velocity, 1) + ai_share", panel, panel.entity_codes, "ai_share")
    >>> row["test"], row["df"], row["verdict"]
    ('lead', 'F(1, 59)', 'fail')
    """
    lead = lag_name(x, -1)
    out = wald(f"{formula} + F({x}, 1)", panel, clusters, [lead], time_effects)
    return _row(x, "lead", out, f"coefficient of {lead} added to the within regression")


def _lead_tests(formula: str, panel: Panel, clusters: np.ndarray, xs: list[str], time_effects: bool, record: bool):
    """:func:`lead_test` of every ``x`` in ``xs``, from one shared design where the rows allow it."""
    try:
        shared = _shared_lead_design(formula, panel, clusters, xs, time_effects) if len(xs) > 1 else None
    except (CausalCTSError, np.linalg.LinAlgError):
        shared = None  # each test then raises (or records) its own error
    leads = {x: lag_name(x, -1) for x in xs}
    rows = []
    for x in xs:
        try:
            if shared is None:
                rows.append(lead_test(formula, panel, clusters, x, time_effects=time_effects))
                continue
            columns = [n for n in shared.names if n not in leads.values() or n == leads[x]]
            out = _wald_test(shared, columns, [leads[x]])
            rows.append(_row(x, "lead", out, f"coefficient of {leads[x]} added to the within regression"))
        except (CausalCTSError, np.linalg.LinAlgError) as err:
            if not record:
                raise
            rows.append(_failed(x, "lead", err))
    return rows


def response_test(
    panel: Panel,
    clusters: np.ndarray,
    control: str,
    treatment: str,
    *,
    time_effects=True,
    predetermined_treatment: bool = False,
) -> dict:
    """Does ``control`` respond to ``treatment``? The treatment and its lag, jointly tested.

    With a strictly exogenous treatment: the within regression of ``control`` on the treatment and its lag
    (team and week effects, CRV1 by ``clusters``), F test. When the treatment is predetermined (its lead test
    fails: adoption reacts to past outcomes, which past controls moved), that within regression is confounded:
    the demeaned treatment carries later adoption, which responded to the control's earlier shocks, and the
    test rejected for a control that adoption does not move in 15 of 40 simulations (300 teams x 12 weeks,
    feedback 2.0, measured); tests/test_exogeneity.py checks the size and power of the GMM form under
    feedback. Then the test is the Wald test of both coefficients in difference GMM of
    ``control ~ L(control, 1) + treatment + L(treatment, 1)`` with the treatment predetermined (instruments from
    lag 1, the control's from lag 2, lags up to 4, collapsed, two-step, Windmeijer-robust, clustered by team),
    chi-square with 2 degrees of freedom.
    """
    tested = [treatment, lag_name(treatment, 1)]
    formula = f"{control} ~ {treatment} + L({treatment}, 1)"
    if not predetermined_treatment:
        out = wald(formula, panel, clusters, tested, time_effects)
        what = f"{control} on {treatment} and its lag, team and week effects"
        return _row(control, "responds to treatment", out, what)
    from causalcts.estimators.api import fit_diff_gmm  # the GMM entry point of this layer

    res = fit_diff_gmm(
        f"{control} ~ L({control}, 1) + {treatment} + L({treatment}, 1)",
        panel,
        entity=panel.entity,
        time=panel.time,
        time_effects=time_effects,
        gmm={control: (2, 4), treatment: (1, 3)},
        predetermined=[treatment],
        collapse=True,
        steps=2,
    )
    b = res.params[tested].to_numpy()
    V = res.cov.loc[tested, tested].to_numpy()
    W = float(b @ np.linalg.solve(V, b))
    out = {"statistic": W, "df": "chi2(2)", "pvalue": float(stats.chi2.sf(W, 2)), "coefficient": float(b[0])}
    what = (
        f"{control} on L1.{control}, {treatment} and its lag by difference GMM with {treatment} predetermined "
        f"(its lead test failed, so the within regression would be confounded by feedback); team and week effects"
    )
    return _row(control, "responds to treatment", out, what)


def feedback_test(panel: Panel, clusters: np.ndarray, treatment: str, outcome: str, *, time_effects=True) -> dict:
    """Does ``treatment`` respond to the past outcome? Its within regression on its lag and the outcome's lag."""
    tested = [lag_name(outcome, 1)]
    out = wald(f"{treatment} ~ L({treatment}, 1) + L({outcome}, 1)", panel, clusters, tested, time_effects)
    what = f"coefficient of L1.{outcome} in a within regression of {treatment} on its lag and L1.{outcome}"
    return _row(treatment, "responds to past outcome", out, what)


def exogeneity_rows(
    formula: str,
    data: pd.DataFrame | Panel,
    *,
    entity: str = "team",
    time: str = "week",
    treatment: str | None = None,
    controls: Sequence[str] | None = None,
    cluster: str | None = None,
    time_effects: bool = True,
    record_errors: bool = False,
) -> list[dict[str, Any]]:
    """The lead test of every regressor and, with a ``treatment``, the response test of every control.

    ``controls`` default to every regressor other than the treatment. With ``record_errors`` a test that cannot
    be computed (a regressor the fixed effects absorb, too few rows) becomes a row with NaN statistics, verdict
    ``"n/a"`` and the reason in ``detail`` instead of raising; :func:`causalcts.fit` uses this so that the checks
    never stop an estimate. Rows are dicts with ``variable`` and the keys of :data:`COLUMNS`.

    Examples
    --------
    >>> import causalcts
    >>> from causalcts.estimators.exogeneity import exogeneity_rows
    >>> sim = causalcts.simulate(n_teams=60, n_weeks=8, seed=1)
    >>> rows = exogeneity_rows("cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate", sim.data,
    ...                        treatment="ai_share")
    >>> [(r["variable"], r["test"]) for r in rows]
    [('ai_share', 'lead'), ('rollback_rate', 'lead'), ('rollback_rate', 'responds to treatment')]
    """
    fspec = formula_spec(formula)
    xs = regressors(formula)
    if treatment is None:
        controls = []
    elif controls is None:
        controls = [v for v in xs if v != treatment]
    columns = list(dict.fromkeys([*used_columns(formula, {}), *(c for c in controls if c not in fspec.variables)]))
    panel, frame = _panel(data, entity, time, columns)
    clusters = _cluster_labels(panel, frame, cluster)
    rows = _lead_tests(formula, panel, clusters, xs, time_effects, record_errors)
    feedback = any(r["variable"] == treatment and r["test"] == "lead" and r["verdict"] == "fail" for r in rows)
    for c in controls:
        try:
            rows.append(
                response_test(
                    panel, clusters, c, str(treatment), time_effects=time_effects, predetermined_treatment=feedback
                )
            )
        except (CausalCTSError, np.linalg.LinAlgError) as err:
            if not record_errors:
                raise
            rows.append(_failed(c, "responds to treatment", err))
    return rows
