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

The Wald tests use the CRV1 clustered covariance of :func:`causalcts.inference.cluster.crv1`
(``G/(G-1) (n-1)/(n-K)`` with fixest's count of K: the fixed effects nested in the clusters left out; the same
covariance as the within estimator of :func:`causalcts.fit`) and :math:`F(q, G-1)` reference distributions,
with :math:`G` the number of clusters and :math:`q` the number of tested coefficients. The computation lives in
:mod:`causalcts.estimators.exogeneity`, which :func:`causalcts.fit` also runs, so that every dynamic-panel
result carries the lead tests (``res.checks``) and shows them in its summary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from causalcts.data.formula import formula_spec, split_formula, split_top_level
from causalcts.data.panel import Panel
from causalcts.errors import SpecificationError
from causalcts.estimators.exogeneity import COLUMNS, THRESHOLDS, exogeneity_rows, regressors, verdict

__all__ = ["COLUMNS", "THRESHOLDS", "check_exogeneity", "drop_terms", "exogeneity_table", "verdict"]


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
    dep = formula_spec(formula).outcome
    xs = regressors(formula)
    if not isinstance(treatment, str) or treatment not in xs:
        raise SpecificationError(f"treatment={treatment!r} is not a regressor of {formula!r}; its regressors are {xs}.")
    if controls is not None:
        controls = [controls] if isinstance(controls, str) else list(controls)
        bad = [c for c in controls if c == treatment or c == dep]
        if bad:
            raise SpecificationError(f"controls may not name the treatment or the outcome: {bad}.")
    rows = exogeneity_rows(
        formula,
        data,
        entity=entity,
        time=time,
        treatment=treatment,
        controls=controls,
        cluster=cluster,
        time_effects=time_effects,
    )
    table = pd.DataFrame(rows).set_index("variable")
    if result is not None:
        table = pd.concat([table, _gmm_table(result)])
    return table[COLUMNS]


def exogeneity_table(res) -> pd.DataFrame:
    """The exogeneity evidence a fitted result carries, in the layout of :func:`check_exogeneity`.

    First the checks the result carries (``res.checks``: the lead tests :func:`causalcts.fit` attaches to every
    dynamic-panel result, or the checks :func:`causalcts.diagnostics.fit_auto` ran); then, for GMM results, each
    difference-in-Hansen test (one per instrument group), the Hansen test and the Arellano-Bond AR(2) test.
    An empty table with the same columns when there is none.

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=80, n_weeks=8, seed=3)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="sys-gmm",
    ...                     predetermined=["ai_share"], gmm={"cr_velocity": (2, 4), "ai_share": (1, 3)},
    ...                     collapse=True)
    >>> causalcts.diagnostics.exogeneity_table(res).loc["ai_share", "test"].tolist()
    ['lead', 'difference-in-Hansen (transformed eq.)', 'difference-in-Hansen (levels eq.)']
    """
    carried = res.checks if isinstance(getattr(res, "checks", None), pd.DataFrame) else None
    parts = [t[COLUMNS] for t in (carried, _gmm_table(res)) if t is not None and not t.empty]
    if not parts:
        return pd.DataFrame(columns=["variable", *COLUMNS]).set_index("variable")
    return pd.concat(parts)


def _gmm_table(res) -> pd.DataFrame:
    """Difference-in-Hansen, Hansen and AR(2) rows of a GMM result's ``tests`` (empty for other results)."""
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
