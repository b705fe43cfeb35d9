"""``causalcts.fit``: one entry point for every dynamic-panel estimator."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from causalcts.data.design import panel_arrays, require_rows
from causalcts.data.formula import Term, parse_formula
from causalcts.data.panel import Panel
from causalcts.errors import CausalCTSError, MissingColumnError, SpecificationError, check_option
from causalcts.estimators.bias import bias_corrected_within, half_panel_jackknife
from causalcts.estimators.gmm import GMMSpec, gmm_fit
from causalcts.estimators.linear import pooled_ols, within_ols
from causalcts.results.base import EstimationResults

__all__ = ["METHODS", "fit"]

METHODS = ("pooled", "within", "anderson-hsiao", "diff-gmm", "sys-gmm", "jackknife", "bias-corrected")
#: Every method of causalcts.fit, the Bayesian model included.
ALL_METHODS = (*METHODS, "bayes")

Method = Literal["pooled", "within", "anderson-hsiao", "diff-gmm", "sys-gmm", "jackknife", "bias-corrected"]


def _as_panel(data, entity, time, columns) -> Panel:
    if isinstance(data, Panel):
        if (data.entity, data.time) != (entity, time) and (entity, time) != ("team", "week"):
            raise SpecificationError(
                f"The panel's keys are ({data.entity!r}, {data.time!r}), not ({entity!r}, {time!r})."
            )
        return data
    if not isinstance(data, (pd.DataFrame, str, Path)):
        raise CausalCTSError(f"data must be a DataFrame, a Panel or a file path, not {type(data).__name__}.")
    frame = data if isinstance(data, pd.DataFrame) else None
    if frame is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MissingColumnError(
                f"The formula uses {missing}, which {'is' if len(missing) == 1 else 'are'} not in the data; "
                f"columns are {list(frame.columns)}."
            )
    return Panel(data, entity=entity, time=time, columns=columns)


def _parse_iv(iv, dep: str, terms: list[Term], gmm_vars: set[str]) -> list[Term]:
    if iv is None:
        return [t for t in terms if t.variable not in gmm_vars and t.variable != dep]
    out = []
    for item in iv:
        if isinstance(item, Term):
            out.append(item)
        elif isinstance(item, str):
            _, parsed = parse_formula(f"_ ~ {item}")
            out.extend(parsed)
        else:
            raise SpecificationError(f"iv entries must be column names or 'L(col, a:b)' strings, not {item!r}.")
    return out


def fit(
    formula: str,
    data: pd.DataFrame | Panel | str | Path,
    *,
    entity: str = "team",
    time: str = "week",
    method: Method = "diff-gmm",
    time_effects: bool = True,
    gmm: dict[str, tuple[int, int | None]] | None = None,
    iv: list[str] | None = None,
    level_iv: list[str] | None = None,
    collapse: bool = False,
    steps: Literal[1, 2] = 1,
    cov: Literal["robust", "unadjusted"] = "robust",
    small: bool = False,
    transform: Literal["fd", "fod"] = "fd",
    **kwargs,
) -> EstimationResults:
    """Estimate a dynamic panel model ``y_it = a_i + lambda_t + beta y_i,t-1 + gamma'X_it + e_it``.

    Parameters
    ----------
    formula
        ``"y ~ L(y, 1) + x + L(z, 0:1)"``; ``L(var, a:b)`` adds lags a..b of ``var``.
    data
        DataFrame, :class:`~causalcts.Panel` or CSV/Parquet path, one row per entity and period.
    entity, time
        Key columns.
    method
        ``"pooled"`` OLS (upper bound on persistence), ``"within"`` fixed effects (lower bound,
        Nickell-biased), ``"anderson-hsiao"`` (first differences instrumented by the outcome's
        second lag), ``"diff-gmm"`` (Arellano-Bond), ``"sys-gmm"`` (Blundell-Bond),
        ``"jackknife"`` (half-panel jackknife of the within estimator, Dhaene and Jochmans 2015),
        ``"bias-corrected"`` (analytical first-order correction of the within estimator).
    time_effects
        Period effects (dummies, or the two-way within transformation).
    gmm
        GMM-style instruments: ``{variable: (first_lag, last_lag or None)}``. Default for the GMM
        methods: the outcome from lag 2 on, ``{y: (2, None)}``.
    iv
        IV-style instruments (default: every regressor that is not the outcome or a GMM variable).
    level_iv
        System GMM only: instruments for the levels equation alone (xtabond2 ``eq(level)``).
    collapse
        One instrument column per lag instead of per period and lag (Roodman 2009b).
    steps
        1 or 2 (two-step efficient GMM).
    cov
        ``"robust"``: clustered by entity (Windmeijer-corrected for two-step GMM);
        ``"unadjusted"``: classical.
    small
        xtabond2's small-sample scaling and t statistics.
    transform
        ``"fd"`` first differences or ``"fod"`` forward orthogonal deviations (GMM methods).

    Returns
    -------
    EstimationResults
        Immutable; ``params``, ``std_errors``, ``conf_int()``, ``tests``, ``long_run(var)``, ``summary()``.

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=100, n_weeks=12, seed=3)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data,
    ...                     method="diff-gmm", collapse=True)
    >>> list(res.params.index)
    ['L1.cr_velocity', 'ai_share']
    """
    if kwargs:
        raise SpecificationError(f"Unknown keyword(s) {sorted(kwargs)} for fit().")
    check_option("method", method, METHODS)
    check_option("steps", steps, (1, 2))
    check_option("cov", cov, ("robust", "unadjusted"))
    check_option("transform", transform, ("fd", "fod"))
    dep, terms = parse_formula(formula)
    outcome_lags = tuple(t.name for t in terms if t.variable == dep)
    gmm_vars = set((gmm or {}).keys())
    iv_terms = _parse_iv(iv, dep, terms, gmm_vars | {dep})
    level_terms = _parse_iv(level_iv, dep, [], set()) if level_iv else []
    used = sorted(
        {
            dep,
            *(t.variable for t in terms),
            *gmm_vars,
            *(t.variable for t in iv_terms),
            *(t.variable for t in level_terms),
        }
    )
    panel = _as_panel(data, entity, time, used)
    if method in ("pooled", "within", "jackknife", "bias-corrected"):
        arrays = panel_arrays(panel, dep, terms)
        ok = np.isfinite(arrays.y) & np.all(np.isfinite(arrays.X), axis=1)
        require_rows(int(ok.sum()), len(terms), f"method={method!r}")
        y, X, codes, periods = arrays.y[ok], arrays.X[ok], arrays.codes[ok], arrays.periods[ok]
        n_ent = len(np.unique(codes))
        if method == "pooled":
            return pooled_ols(
                y,
                X,
                arrays.names,
                codes,
                periods,
                time_effects=time_effects,
                cov=cov,
                formula=formula,
                n_entities=n_ent,
                outcome_lags=outcome_lags,
            )
        common = dict(time_effects=time_effects, cov=cov, formula=formula, outcome_lags=outcome_lags)
        args = (y, X, arrays.names, codes, periods)
        if method == "within":
            return within_ols(*args, **common)
        if method == "jackknife":
            return half_panel_jackknife(*args, **common)
        return bias_corrected_within(*args, **common, n_outcome_lags=len(outcome_lags), terms=terms, dep=dep)
    # GMM family
    if not outcome_lags and method == "anderson-hsiao":
        raise SpecificationError("anderson-hsiao needs a lag of the outcome among the regressors.")
    max_lag = max(t.lag for t in terms)
    panel.require_periods(max_lag + 2, why=f"first differences with lags up to {max_lag}")
    if method == "anderson-hsiao":
        first = max(t.lag for t in terms if t.variable == dep) + 1
        gmm_spec = {dep: (first, first)}
        spec_collapse, weighting, system = True, "identity", False
    else:
        gmm_spec = dict(gmm) if gmm else {dep: (2, None)}
        spec_collapse, weighting, system = collapse, "h3", method == "sys-gmm"
    for v, lags in gmm_spec.items():
        if not (
            isinstance(lags, tuple)
            and len(lags) == 2
            and isinstance(lags[0], int)
            and lags[0] >= 0
            and (lags[1] is None or (isinstance(lags[1], int) and lags[1] >= lags[0]))
        ):
            raise SpecificationError(f"gmm[{v!r}] must be (first_lag, last_lag or None), got {lags!r}.")
        if system and lags[0] < 1:
            raise SpecificationError(f"System GMM needs gmm[{v!r}] to start at lag 1 or later.")
    if level_terms and not system:
        raise SpecificationError("level_iv applies to the levels equation, which only sys-gmm has.")
    raw = {v: panel.column(v).to_numpy(dtype=float) for v in used}
    spec = GMMSpec(
        dep=dep,
        terms=terms,
        gmm=gmm_spec,
        iv=iv_terms,
        level_iv=level_terms,
        system=system,
        transform=transform,
        collapse=spec_collapse,
        time_effects=time_effects,
        steps=steps,
        cov=cov,
        small=small,
        weighting=weighting,
    )
    return gmm_fit(
        spec, raw, panel.entity_codes, panel.periods, formula=formula, method=method, outcome_lags=outcome_lags
    )
