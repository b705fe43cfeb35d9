r"""Exogeneity checks: can the regressors be treated as strictly exogenous, and is a control a mediator?

:func:`check_exogeneity` runs, on the data, two families of cluster-robust Wald tests in the two-way
fixed-effects (within) regression:

* **Lead test of strict exogeneity** (Wooldridge 2010, sec. 10.7.1): for every regressor :math:`x`
  (the outcome's own lags excepted), add its lead :math:`x_{i,t+1}` (``F(x, 1)``) to the model and test
  its coefficient. Under strict exogeneity, :math:`E[\varepsilon_{it} \mid x_{i1}, \dots, x_{iT}, a_i] = 0`,
  next period's :math:`x` has no place in this period's equation; when :math:`x` responds to past
  outcomes (feedback: teams adopt after good or bad weeks) its lead picks up :math:`\varepsilon_{it}`.
  With a lagged outcome among the regressors the within estimator is Nickell-biased by
  :math:`O(1/T)`; the bias moves the lead's coefficient too, so at small :math:`T` the test's size can
  exceed its nominal level (the tests of ``tests/test_exogeneity.py`` measure it).
* **Does a control respond to the treatment?** For every control :math:`c`, regress :math:`c_{it}` on
  the treatment and its first lag with team and week effects and test both coefficients jointly.
  A control that moves with adoption is a possible mediator (a *bad control*, Angrist and Pischke
  2009, sec. 3.2.3): holding it fixed removes part of the effect, so the estimate is the direct, not
  the total, effect.

For GMM results, :func:`exogeneity_table` reads the difference-in-Hansen tests that every GMM fit
carries for each instrument group (instruments of one variable in one equation): the Hansen statistic
minus the one without that group, :math:`\chi^2` with as many degrees of freedom as the group has
columns (Roodman 2009). A rejection says those instruments (e.g. the treatment's own lags, used as if
predetermined) are invalid.

Verdicts, for every test: ``"fail"`` when :math:`p < 0.05`, ``"warn"`` when :math:`0.05 \le p < 0.10`,
``"pass"`` otherwise (:data:`THRESHOLDS`).

The Wald tests use the CRV1 clustered covariance (``G/(G-1) (n-1)/(n-K)``, as the within estimator of
:func:`causalcts.fit`) and :math:`F(q, G-1)` reference distributions, with :math:`G` the number of
clusters and :math:`q` the number of tested coefficients.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from causalcts.data.design import build_design
from causalcts.data.formula import formula_spec, split_formula, split_top_level
from causalcts.data.panel import Panel, lag_name
from causalcts.errors import CausalCTSError, MissingColumnError, SpecificationError
from causalcts.estimators.api import used_columns
from causalcts.estimators.linear import check_not_absorbed, cluster_scale, within_transform

__all__ = ["COLUMNS", "THRESHOLDS", "check_exogeneity", "drop_terms", "exogeneity_table", "verdict"]

#: p-value thresholds of the verdicts: below the first "fail", below the second "warn", otherwise "pass".
THRESHOLDS = (0.05, 0.10)
#: Columns of the tables returned by :func:`check_exogeneity` and :func:`exogeneity_table`.
COLUMNS = ["test", "statistic", "df", "pvalue", "verdict", "coefficient", "detail"]


def verdict(pvalue: float) -> str:
    """``"fail"`` below 0.05, ``"warn"`` below 0.10, ``"pass"`` otherwise, ``"n/a"`` for a missing p-value.

    Examples
    --------
    >>> from causalcts.diagnostics.exogeneity import verdict
    >>> verdict(0.01), verdict(0.07), verdict(0.5)
    ('fail', 'warn', 'pass')
    """
    if pvalue is None or not np.isfinite(pvalue):
        return "n/a"
    return "fail" if pvalue < THRESHOLDS[0] else "warn" if pvalue < THRESHOLDS[1] else "pass"


def drop_terms(formula: str, variables: Sequence[str]) -> str:
    """``formula`` without the right-hand-side terms that mention any of ``variables`` (whole words).

    Examples
    --------
    >>> from causalcts.diagnostics.exogeneity import drop_terms
    >>> drop_terms("y ~ L(y, 1) + x + L(c, 0:1) + np.log(c2)", ["c"])
    'y ~ L(y, 1) + x + np.log(c2)'
    """
    lhs, rhs = split_formula(formula)
    pats = [re.compile(rf"(?<![\w.]){re.escape(v)}(?![\w])") for v in variables]
    keep = [t.strip() for t in split_top_level(rhs, "+") if not any(p.search(t) for p in pats)]
    if not keep:
        raise SpecificationError(f"Dropping {list(variables)} leaves no regressor in {formula!r}.")
    return f"{lhs} ~ {' + '.join(keep)}"


# ---------------------------------------------------------------------------------------------- the regression
def _panel(data, entity, time, columns) -> tuple[Panel, pd.DataFrame | None]:
    if isinstance(data, Panel):
        return data, None
    if not isinstance(data, pd.DataFrame):
        raise CausalCTSError(f"data must be a DataFrame or a Panel, not {type(data).__name__}.")
    missing = [c for c in (entity, time, *columns) if c not in data.columns]
    if missing:
        raise MissingColumnError(f"The checks use {missing}, not in the data; columns are {list(data.columns)}.")
    return Panel(data, entity=entity, time=time, columns=columns), data


def _cluster_codes(panel: Panel, frame: pd.DataFrame | None, cluster: str | None) -> np.ndarray:
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


def _wald(formula: str, panel: Panel, clusters: np.ndarray, tested: list[str], time_effects: bool) -> dict:
    """Within regression of ``formula``, clustered; joint Wald test of the coefficients named ``tested``."""
    d = build_design(formula, panel)
    ok = np.isfinite(d.y) & np.all(np.isfinite(d.X), axis=1)
    y, X, codes, periods, cl = d.y[ok], d.X[ok], d.codes[ok], d.periods[ok], clusters[ok]
    if len(y) <= X.shape[1] + len(np.unique(codes)):
        raise SpecificationError(f"Too few rows ({len(y)}) for the check regression {formula!r}.")
    M, absorbed = within_transform(np.column_stack([y, X]), codes, periods, time_effects)
    yt, Xt = M[:, 0], M[:, 1:]
    check_not_absorbed(X, Xt, d.names, "entity and period" if time_effects else "entity")
    XtX_inv = np.linalg.inv(Xt.T @ Xt)
    b = XtX_inv @ (Xt.T @ yt)
    e = yt - Xt @ b
    _, cl = np.unique(cl, return_inverse=True)
    G = int(cl.max()) + 1
    scores = np.column_stack([np.bincount(cl, weights=Xt[:, j] * e, minlength=G) for j in range(Xt.shape[1])])
    n_ent = len(np.unique(codes))
    V = XtX_inv @ (scores.T @ scores) @ XtX_inv * cluster_scale(len(y), Xt.shape[1] + (absorbed - n_ent) + 1, G)
    idx = [d.names.index(t) for t in tested]
    bt, Vt = b[idx], V[np.ix_(idx, idx)]
    q = len(idx)
    F = float(bt @ np.linalg.solve(Vt, bt)) / q
    return {
        "statistic": F,
        "df": f"F({q}, {G - 1})",
        "pvalue": float(stats.f.sf(F, q, G - 1)),
        "coefficient": float(bt[0]),
        "nobs": int(len(y)),
    }


def _row(variable: str, test: str, out: Mapping, detail: str) -> dict:
    return {
        "variable": variable,
        "test": test,
        "statistic": out["statistic"],
        "df": out["df"],
        "pvalue": out["pvalue"],
        "verdict": verdict(out["pvalue"]),
        "coefficient": out.get("coefficient", np.nan),
        "detail": detail,
    }


def check_exogeneity(
    formula: str,
    data: pd.DataFrame | Panel,
    *,
    entity: str = "team",
    time: str = "week",
    treatment: str,
    controls: Sequence[str] | None = None,
    cluster: str | None = None,
    time_effects: bool = True,
    result=None,
) -> pd.DataFrame:
    """Strict-exogeneity lead tests, control-response tests and (for a GMM ``result``) difference-in-Hansen.

    Parameters
    ----------
    formula
        The outcome model, e.g. ``"y ~ L(y, 1) + ai_share + rollback_rate"``.
    data
        DataFrame or :class:`~causalcts.Panel`; never modified.
    entity, time
        Key columns.
    treatment
        The treatment regressor (``ai_share``).
    controls
        Regressors tested for a response to the treatment; default every regressor of the formula other
        than the treatment and the outcome's lags.
    cluster
        Column to cluster the Wald tests on (default: ``entity``).
    time_effects
        Week effects in the check regressions (default True).
    result
        Optional GMM results: their difference-in-Hansen tests are appended (:func:`exogeneity_table`).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``variable`` (a variable may have several rows), with columns ``test`` (``"lead"``,
        ``"responds to treatment"``, ``"difference-in-Hansen ..."``), ``statistic`` (Wald F or
        :math:`\\chi^2`), ``df``, ``pvalue``, ``verdict`` (``fail`` p < 0.05, ``warn`` p < 0.10, else
        ``pass``), ``coefficient`` (the lead's, or the treatment's in the response regression) and
        ``detail``.

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=80, n_weeks=10, feedback=2.0, seed=1)
    >>> table = causalcts.diagnostics.check_exogeneity(
    ...     "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate", sim.data, treatment="ai_share")
    >>> table["test"].tolist()
    ['lead', 'lead', 'responds to treatment']
    >>> table.loc["ai_share", "verdict"]
    'fail'
    """
    fspec = formula_spec(formula)
    dep = fspec.outcome
    regressors = [v for v in dict.fromkeys(t.variable for t in fspec.terms) if v != dep]
    if not isinstance(treatment, str) or treatment not in regressors:
        raise SpecificationError(
            f"treatment={treatment!r} is not a regressor of {formula!r}; its regressors are {regressors}."
        )
    if controls is None:
        controls = [v for v in regressors if v != treatment]
    else:
        controls = [controls] if isinstance(controls, str) else list(controls)
        bad = [c for c in controls if c == treatment or c == dep]
        if bad:
            raise SpecificationError(f"controls may not name the treatment or the outcome: {bad}.")
    columns = list(dict.fromkeys([*used_columns(formula, {}), *(c for c in controls if c not in fspec.variables)]))
    panel, frame = _panel(data, entity, time, columns)
    clusters = _cluster_codes(panel, frame, cluster)
    rows = []
    for x in regressors:
        lead = lag_name(x, -1)
        out = _wald(f"{formula} + F({x}, 1)", panel, clusters, [lead], time_effects)
        rows.append(_row(x, "lead", out, f"coefficient of {lead} added to the within regression"))
    for c in controls:
        tested = [treatment, lag_name(treatment, 1)]
        out = _wald(f"{c} ~ {treatment} + L({treatment}, 1)", panel, clusters, tested, time_effects)
        rows.append(_row(c, "responds to treatment", out, f"{c} on {treatment} and its lag, team and week effects"))
    table = pd.DataFrame(rows).set_index("variable")
    if result is not None:
        table = pd.concat([table, exogeneity_table(result)])
    return table[COLUMNS]


def exogeneity_table(res) -> pd.DataFrame:
    """The exogeneity evidence a fitted result carries, in the layout of :func:`check_exogeneity`.

    For GMM results: each difference-in-Hansen test (one per instrument group), the Hansen test and the
    Arellano-Bond AR(2) test. For results of :func:`causalcts.diagnostics.fit_auto`: the checks it ran.
    Otherwise an empty table with the same columns.

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=80, n_weeks=8, seed=3)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="sys-gmm",
    ...                     predetermined=["ai_share"], gmm={"cr_velocity": (2, 4), "ai_share": (1, 3)},
    ...                     collapse=True)
    >>> causalcts.diagnostics.exogeneity_table(res).loc["ai_share", "test"].tolist()
    ['difference-in-Hansen (transformed eq.)', 'difference-in-Hansen (levels eq.)']
    """
    info = getattr(res, "info", {}) or {}
    if "checks" in info:
        return pd.DataFrame(list(info["checks"])).set_index("variable")[COLUMNS]
    rows = []
    for name, t in (getattr(res, "tests", {}) or {}).items():
        if name.startswith("diff-in-hansen: "):
            group = name[len("diff-in-hansen: ") :]
            if group.startswith("gmm(") and ", " in group:
                variable, _, where = group[4:-1].partition(", ")
                test = f"difference-in-Hansen ({where})"
            else:
                variable, test = group, "difference-in-Hansen (IV-style instruments)"
            stat, p = t.get("difference", np.nan), t.get("pvalue", np.nan)
            detail = f"Hansen without the group: {t.get('excluding', np.nan):.4g}"
        elif name in ("hansen", "ar2"):
            variable = "(all instruments)" if name == "hansen" else "(errors)"
            test = "Hansen" if name == "hansen" else "AR(2) in differences"
            stat, p = t.get("statistic", np.nan), t.get("pvalue", np.nan)
            detail = "overidentifying restrictions" if name == "hansen" else "no serial correlation of errors"
        else:
            continue
        df = t.get("df", np.nan)
        rows.append(
            {
                "variable": variable,
                "test": test,
                "statistic": float(stat),
                "df": f"chi2({df})" if name != "ar2" else "N(0, 1)",
                "pvalue": float(p),
                "verdict": verdict(p),
                "coefficient": np.nan,
                "detail": detail,
            }
        )
    if not rows:
        return pd.DataFrame(columns=["variable", *COLUMNS]).set_index("variable")
    return pd.DataFrame(rows).set_index("variable")[COLUMNS]
