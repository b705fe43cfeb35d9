"""The frequentist methods: one function per method, and their declarations for :mod:`causalcts.registry`.

Every method function has the call shape ``fit_x(formula, data, *, entity, time, time_effects, **options)``
and accepts only the options that apply to it; :func:`fit` (the 0.1 entry point, kept) dispatches by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from causalcts.data.design import build_design, require_rows
from causalcts.data.formula import Term, formula_spec, parse_formula
from causalcts.data.panel import Panel
from causalcts.errors import CausalCTSError, MissingColumnError, SpecificationError, check_option
from causalcts.estimators.bias import bias_corrected_within, half_panel_jackknife
from causalcts.estimators.gmm import GMMSpec, gmm_fit
from causalcts.estimators.linear import pooled_ols, within_ols
from causalcts.results.base import EstimationResults

__all__ = [
    "METHODS",
    "METHODS_DECLARED",
    "check_options",
    "fit",
    "fit_anderson_hsiao",
    "fit_bias_corrected",
    "fit_diff_gmm",
    "fit_jackknife",
    "fit_pooled",
    "fit_sys_gmm",
    "fit_within",
    "used_columns",
]

COV_TYPES = ("robust", "unadjusted")


# ---------------------------------------------------------------------------------------------- helpers
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


def _names(value, option: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set)) or not all(isinstance(v, str) for v in value):
        raise SpecificationError(f"{option} must be a list of regressor names, got {value!r}.")
    return list(dict.fromkeys(value))


def check_exogeneity_lists(predetermined, endogenous, dep: str, regressors) -> tuple[list[str], list[str]]:
    """Validate ``predetermined`` and ``endogenous`` against the formula's outcome and regressors.

    ``regressors`` are the variables of the formula's terms (``ai_share`` for ``L(ai_share, 0:1)``). A name that
    is not a regressor, the outcome, or a name in both lists raises :class:`SpecificationError`.

    Examples
    --------
    >>> from causalcts.estimators.api import check_exogeneity_lists
    >>> check_exogeneity_lists(["x"], None, "y", ["y", "x", "z"])
    (['x'], [])
    """
    pre, endo = _names(predetermined, "predetermined"), _names(endogenous, "endogenous")
    both = sorted(set(pre) & set(endo))
    if both:
        raise SpecificationError(
            f"{both} {'is' if len(both) == 1 else 'are'} listed as both predetermined and endogenous; "
            "name each regressor in one list."
        )
    for option, names in (("predetermined", pre), ("endogenous", endo)):
        if dep in names:
            raise SpecificationError(
                f"{option} lists the outcome {dep!r}: its lags are predetermined by construction and already "
                "instrumented by its own deeper lags; list regressors only."
            )
        unknown = [n for n in names if n not in regressors]
        if unknown:
            choices = [r for r in dict.fromkeys(regressors) if r != dep]
            raise SpecificationError(
                f"{option} lists {unknown}, which {'is' if len(unknown) == 1 else 'are'} not a regressor of the "
                f"formula; its regressors are {choices}."
            )
    return pre, endo


def _exogeneity_gmm(gmm, predetermined, endogenous, dep, terms, iv) -> dict[str, tuple[int, int | None]] | None:
    """GMM-style instruments for predetermined (lags 1+) and endogenous (lags 2+) regressors, as in xtabond2.

    A variable also in ``gmm`` keeps the user's lag range, which must start at lag 1 or later (predetermined)
    or 2 or later (endogenous); an ``iv`` entry (exogenous, IV-style) naming one of them is an error.
    """
    pre, endo = check_exogeneity_lists(predetermined, endogenous, dep, [t.variable for t in terms] + [dep])
    if not pre and not endo:
        return gmm
    out = dict(gmm) if gmm else {dep: (2, None)}
    for names, first, kind in ((pre, 1, "predetermined"), (endo, 2, "endogenous")):
        for v in names:
            given = out.get(v)
            if given is None:
                out[v] = (first, None)
            elif not (isinstance(given, tuple) and isinstance(given[0], int) and given[0] >= first):
                raise SpecificationError(
                    f"{v!r} is {kind}, so its GMM instruments start at lag {first} or later; gmm[{v!r}] = {given!r} "
                    f"starts earlier. Leave gmm[{v!r}] unset for ({first}, None), or give ({first}, last_lag)."
                )
    if iv is not None:
        exo = {t.variable for t in _parse_iv(iv, dep, terms, set())}
        clash = sorted(exo & set(pre + endo))
        if clash:
            raise SpecificationError(
                f"iv lists {clash} as exogenous (IV-style) but {'it is' if len(clash) == 1 else 'they are'} "
                "predetermined or endogenous; remove them from iv."
            )
    return out


def used_columns(formula: str, options: Mapping[str, Any]) -> list[str]:
    """Every data column a frequentist fit reads: the formula's and those named by ``gmm``, ``iv``, ``level_iv``.

    Examples
    --------
    >>> from causalcts.estimators.api import used_columns
    >>> used_columns("n ~ L(n, 1) + w", {"gmm": {"k": (2, 3)}, "iv": ["L(ys, 0:1)"]})
    ['n', 'w', 'k', 'ys']
    """
    fspec = formula_spec(formula)  # columns read as numbers; derived ones (np.log(x)) come from the design
    dep, terms = fspec.outcome, list(fspec.terms)
    gmm = options.get("gmm") or {}
    iv_terms = _parse_iv(options.get("iv"), dep, terms, set(gmm) | {dep}) if options.get("iv") else []
    level_terms = _parse_iv(options.get("level_iv"), dep, [], set()) if options.get("level_iv") else []
    extra = [*gmm, *(t.variable for t in iv_terms + level_terms)]
    first = [c for c in (dep, *(t.variable for t in terms)) if c in fspec.numeric]
    cols = [*first, *fspec.numeric, *(c for c in extra if c not in fspec.variables or c in fspec.numeric)]
    return list(dict.fromkeys(cols))


def check_options(name: str, options: Mapping[str, Any], accepted, *, every=None) -> dict[str, Any]:
    """The options that are set (not None); a set option that ``method=name`` does not take raises.

    ``every`` is the set of options any method takes (default: the frequentist ones); others are unknown. When it
    maps each option to the methods that take it (as :func:`causalcts.registry.check_options` passes it), the
    error for ``predetermined`` or ``endogenous`` on a method that assumes strict exogeneity names the methods
    that can honour them.

    Examples
    --------
    >>> from causalcts.estimators.api import check_options
    >>> try:
    ...     check_options("within", {"predetermined": ["ai_share"]}, ("cov",))
    ... except ValueError as err:
    ...     print(str(err)[:60])
    method='within' assumes strict exogeneity of every regressor
    """
    given = {k: v for k, v in options.items() if v is not None}
    takers = every if isinstance(every, Mapping) else _TAKERS if every is None else {}
    exo = [o for o in EXOGENEITY_OPTIONS if o in given and o not in accepted]
    if exo:
        strict = "" if "predetermined" in accepted else "assumes strict exogeneity of every regressor and "
        can = list(dict.fromkeys(m for o in exo for m in takers.get(o, ())))
        raise SpecificationError(
            f"method={name!r} {strict}cannot honour {' or '.join(str(o) for o in exo)}="
            f"{[given[o] for o in exo] if len(exo) > 1 else given[exo[0]]!r}; methods that can: "
            f"{', '.join(can) or 'none registered'} ({exo[0]} regressors are instrumented by their own lags, or "
            "modelled sequentially)."
        )
    known = set(ALL_OPTIONS if every is None else every) | set(accepted)
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpecificationError(
            f"Unknown keyword(s) {unknown} for fit(); method={name!r} takes {', '.join(accepted) or 'no options'} "
            "besides entity, time, time_effects and dropna."
        )
    bad = sorted(set(given) - set(accepted))
    if bad:
        raise SpecificationError(
            f"Option(s) {bad} do not apply to method={name!r}, which takes {', '.join(accepted) or 'no options'} "
            "besides entity, time, time_effects and dropna; leave the others unset."
        )
    return given


def _spec(method, formula, entity, time, time_effects, options) -> dict[str, Any]:
    spec = {"formula": formula, "method": method, "entity": entity, "time": time, "time_effects": time_effects}
    return spec | dict(options)


def _sample_index(panel: Panel, rows: np.ndarray) -> pd.MultiIndex:
    return panel.key_index(rows)


# ---------------------------------------------------------------------------------------------- least squares
def _least_squares(method, formula, data, *, entity, time, time_effects, cov):
    cov = "robust" if cov is None else cov
    check_option("cov", cov, COV_TYPES)
    panel = _as_panel(data, entity, time, used_columns(formula, {}))
    arrays = build_design(formula, panel)
    dep, terms, outcome_lags = arrays.dep, arrays.terms, arrays.outcome_lags
    ok = np.isfinite(arrays.y) & np.all(np.isfinite(arrays.X), axis=1)
    require_rows(int(ok.sum()), len(terms), f"method={method!r}")
    y, X, codes, periods = arrays.y[ok], arrays.X[ok], arrays.codes[ok], arrays.periods[ok]
    index = _sample_index(panel, np.flatnonzero(ok))
    common = dict(time_effects=time_effects, cov=cov, formula=formula, outcome_lags=outcome_lags, index=index)
    args = (y, X, arrays.names, codes, periods)
    if method == "pooled":
        res = pooled_ols(*args, n_entities=len(np.unique(codes)), **common)
    elif method == "within":
        res = within_ols(*args, **common)
    elif method == "jackknife":
        res = half_panel_jackknife(*args, **common)
    else:
        res = bias_corrected_within(*args, **common, n_outcome_lags=len(outcome_lags), terms=terms, dep=dep)
    return replace(res, spec=_spec(method, formula, entity, time, time_effects, {"cov": cov}))


def fit_pooled(formula, data, *, entity="team", time="week", time_effects=True, cov=None) -> EstimationResults:
    """Pooled OLS with a constant (and period dummies): the upper bound on persistence.

    Examples
    --------
    >>> import causalcts
    >>> from causalcts.estimators.api import fit_pooled
    >>> sim = causalcts.simulate(n_teams=50, n_weeks=8, seed=3)
    >>> fit_pooled("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data).df_resid  # t(G - 1) when clustered
    49.0
    """
    return _least_squares("pooled", formula, data, entity=entity, time=time, time_effects=time_effects, cov=cov)


def fit_within(formula, data, *, entity="team", time="week", time_effects=True, cov=None) -> EstimationResults:
    """Within (fixed effects) estimator, two-way with ``time_effects``: the lower bound (Nickell-biased)."""
    return _least_squares("within", formula, data, entity=entity, time=time, time_effects=time_effects, cov=cov)


def fit_jackknife(formula, data, *, entity="team", time="week", time_effects=True, cov=None) -> EstimationResults:
    """Half-panel jackknife of the within estimator (Dhaene and Jochmans 2015)."""
    return _least_squares("jackknife", formula, data, entity=entity, time=time, time_effects=time_effects, cov=cov)


def fit_bias_corrected(formula, data, *, entity="team", time="week", time_effects=True, cov=None) -> EstimationResults:
    """Within estimator with the analytical first-order Nickell correction (one outcome lag)."""
    return _least_squares("bias-corrected", formula, data, entity=entity, time=time, time_effects=time_effects, cov=cov)


# ---------------------------------------------------------------------------------------------- GMM
def _gmm(
    method,
    formula,
    data,
    *,
    entity,
    time,
    time_effects,
    gmm=None,
    iv=None,
    level_iv=None,
    collapse=None,
    steps=None,
    cov=None,
    small=None,
    transform=None,
    predetermined=None,
    endogenous=None,
) -> EstimationResults:
    steps = 1 if steps is None else steps
    cov = "robust" if cov is None else cov
    transform = "fd" if transform is None else transform
    collapse, small = bool(collapse), bool(small)
    check_option("steps", steps, (1, 2))
    check_option("cov", cov, COV_TYPES)
    check_option("transform", transform, ("fd", "fod"))
    used = used_columns(formula, {"gmm": gmm, "iv": iv, "level_iv": level_iv})
    panel = _as_panel(data, entity, time, used)
    design = build_design(formula, panel)
    dep, terms, outcome_lags = design.dep, design.terms, design.outcome_lags
    gmm = _exogeneity_gmm(gmm, predetermined, endogenous, dep, terms, iv)
    gmm_vars = set((gmm or {}).keys())
    iv_terms = _parse_iv(iv, dep, terms, gmm_vars | {dep})
    level_terms = _parse_iv(level_iv, dep, [], set()) if level_iv else []
    if not outcome_lags and method == "anderson-hsiao":
        raise SpecificationError("anderson-hsiao needs a lag of the outcome among the regressors.")
    max_lag = max(t.lag for t in terms)
    panel.require_periods(max_lag + 2, why=f"first differences with lags up to {max_lag}")
    gmm_spec: dict[str, tuple[int, int | None]]
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
    raw = design.values(
        dict.fromkeys([*used, dep, *gmm_spec, *(t.variable for t in (*terms, *iv_terms, *level_terms))])
    )
    spec = GMMSpec(
        dep=dep,
        terms=terms,
        gmm=gmm_spec,
        iv=iv_terms,
        level_iv=level_terms,
        system=system,
        transform=transform if method != "anderson-hsiao" else "fd",
        collapse=spec_collapse,
        time_effects=time_effects,
        steps=steps,
        cov=cov,
        small=small,
        weighting=weighting,
    )
    keys = panel.key_index()
    labels = (keys.get_level_values(0).to_numpy(), keys.get_level_values(1).to_numpy(), (panel.entity, panel.time))
    res = gmm_fit(
        spec,
        raw,
        panel.entity_codes,
        panel.periods,
        formula=formula,
        method=method,
        outcome_lags=outcome_lags,
        labels=labels,
    )
    if method == "anderson-hsiao":
        options = {"iv": iv, "cov": cov, "small": small}
    else:
        options = {"gmm": gmm_spec, "iv": iv, "collapse": collapse, "steps": steps, "cov": cov, "small": small}
        options["transform"] = transform
        if predetermined is not None or endogenous is not None:
            options["predetermined"] = _names(predetermined, "predetermined")
            options["endogenous"] = _names(endogenous, "endogenous")
        if system:
            options["level_iv"] = level_iv
    return replace(res, spec=_spec(method, formula, entity, time, time_effects, options))


def fit_anderson_hsiao(
    formula, data, *, entity="team", time="week", time_effects=True, iv=None, cov=None, small=None
) -> EstimationResults:
    """Anderson-Hsiao: first differences, the outcome's lag instrumented by its next lag in levels (2SLS).

    ``tests["first_stage"]`` holds the conventional first-stage F of the excluded instrument; an
    :class:`~causalcts.errors.InstrumentWarning` is raised when it is below 10 (Staiger and Stock 1997).
    """
    return _gmm(
        "anderson-hsiao",
        formula,
        data,
        entity=entity,
        time=time,
        time_effects=time_effects,
        iv=iv,
        cov=cov,
        small=small,
    )


def fit_diff_gmm(
    formula,
    data,
    *,
    entity="team",
    time="week",
    time_effects=True,
    gmm=None,
    iv=None,
    collapse=None,
    steps=None,
    cov=None,
    small=None,
    transform=None,
    predetermined=None,
    endogenous=None,
) -> EstimationResults:
    """Difference GMM (Arellano and Bond 1991) as xtabond2 computes it; options as in :func:`fit`.

    ``predetermined`` regressors (``E[x_is e_it] = 0`` for s <= t only) get GMM-style instruments from lag 1,
    ``endogenous`` ones from lag 2 (xtabond2 ``gmm(x, lag(1 .))`` and ``gmm(x, lag(2 .))``).

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=80, n_weeks=8, seed=3)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="diff-gmm",
    ...                     predetermined=["ai_share"], collapse=True)
    >>> res.spec["gmm"]
    {'cr_velocity': (2, None), 'ai_share': (1, None)}
    """
    return _gmm(
        "diff-gmm",
        formula,
        data,
        entity=entity,
        time=time,
        time_effects=time_effects,
        gmm=gmm,
        iv=iv,
        collapse=collapse,
        steps=steps,
        cov=cov,
        small=small,
        transform=transform,
        predetermined=predetermined,
        endogenous=endogenous,
    )


def fit_sys_gmm(
    formula,
    data,
    *,
    entity="team",
    time="week",
    time_effects=True,
    gmm=None,
    iv=None,
    level_iv=None,
    collapse=None,
    steps=None,
    cov=None,
    small=None,
    transform=None,
    predetermined=None,
    endogenous=None,
) -> EstimationResults:
    """System GMM (Blundell and Bond 1998) as xtabond2 computes it; options as in :func:`fit`.

    ``predetermined`` regressors get lags 1 and earlier in the transformed equation and ``D.x_t`` in the levels
    equation; ``endogenous`` ones lags 2 and earlier and ``D.x_{t-1}`` (xtabond2's conventions).

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=80, n_weeks=8, seed=3)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="sys-gmm",
    ...                     gmm={"cr_velocity": (2, 4), "ai_share": (1, 3)}, predetermined=["ai_share"],
    ...                     collapse=True)
    >>> res.spec["predetermined"], res.spec["gmm"]["ai_share"]
    (['ai_share'], (1, 3))
    """
    return _gmm(
        "sys-gmm",
        formula,
        data,
        entity=entity,
        time=time,
        time_effects=time_effects,
        gmm=gmm,
        iv=iv,
        level_iv=level_iv,
        collapse=collapse,
        steps=steps,
        cov=cov,
        small=small,
        transform=transform,
        predetermined=predetermined,
        endogenous=endogenous,
    )


# ---------------------------------------------------------------------------------------------- declarations
_GMM_OPTIONS = ("gmm", "iv", "collapse", "steps", "cov", "small", "transform", "predetermined", "endogenous")
#: Options that relax strict exogeneity; a method that does not take them assumes it.
EXOGENEITY_OPTIONS = ("predetermined", "endogenous")

#: The frequentist methods, declared once; :mod:`causalcts.registry` combines them with the other families.
METHODS_DECLARED: tuple[dict[str, Any], ...] = (
    dict(
        name="pooled",
        family="least-squares",
        fit=fit_pooled,
        options=("cov",),
        description="pooled OLS with period dummies; upper bound on persistence",
        assumes="no team effects correlated with the regressors (violated with a lagged outcome)",
        columns=used_columns,
    ),
    dict(
        name="within",
        family="least-squares",
        fit=fit_within,
        options=("cov",),
        description="fixed effects (one- or two-way within); lower bound on persistence",
        assumes="strict exogeneity; Nickell-biased by about -(1 + beta)/(T - 1) with a lagged outcome",
        columns=used_columns,
    ),
    dict(
        name="jackknife",
        family="least-squares",
        fit=fit_jackknife,
        options=("cov",),
        description="half-panel jackknife of the within estimator (Dhaene and Jochmans 2015)",
        assumes="strict exogeneity of X; stationarity across the two halves of the periods",
        columns=used_columns,
    ),
    dict(
        name="bias-corrected",
        family="least-squares",
        fit=fit_bias_corrected,
        options=("cov",),
        description="within estimator with the analytical Nickell correction (one outcome lag)",
        assumes="strict exogeneity of X; homoskedastic, serially uncorrelated errors; stationary AR(1)",
        columns=used_columns,
    ),
    dict(
        name="anderson-hsiao",
        family="gmm",
        fit=fit_anderson_hsiao,
        options=("iv", "cov", "small"),
        description="first differences, lagged outcome instrumented by its next lag (just-identified 2SLS)",
        assumes="serially uncorrelated errors; a strong first stage (F >= 10 rule of thumb)",
        columns=used_columns,
    ),
    dict(
        name="diff-gmm",
        family="gmm",
        fit=fit_diff_gmm,
        options=_GMM_OPTIONS,
        description="difference GMM (Arellano and Bond 1991), xtabond2 conventions",
        assumes="sequential exogeneity; no serial correlation of errors (AR(2) test); valid lags (Hansen)",
        columns=used_columns,
    ),
    dict(
        name="sys-gmm",
        family="gmm",
        fit=fit_sys_gmm,
        options=(*_GMM_OPTIONS, "level_iv"),
        description="system GMM (Blundell and Bond 1998), xtabond2 conventions",
        assumes="as diff-gmm, plus mean stationarity: differences uncorrelated with the team effects",
        columns=used_columns,
    ),
)

_BY_NAME = {d["name"]: d for d in METHODS_DECLARED}
#: option -> frequentist methods that take it (the registry passes the same mapping over every family).
_TAKERS = {o: tuple(d["name"] for d in METHODS_DECLARED if o in d["options"]) for o in EXOGENEITY_OPTIONS}
#: Names of the frequentist methods (read from :data:`METHODS_DECLARED`).
METHODS = tuple(_BY_NAME)
ALL_OPTIONS = {o for d in METHODS_DECLARED for o in d["options"]}


def __getattr__(name: str):
    if name == "ALL_METHODS":
        raise AttributeError(
            "causalcts.estimators.api.ALL_METHODS was replaced by the method registry: use causalcts.registry.names()."
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fit(
    formula: str,
    data: pd.DataFrame | Panel | str | Path,
    *,
    entity: str = "team",
    time: str = "week",
    method: str = "diff-gmm",
    time_effects: bool = True,
    gmm: dict[str, tuple[int, int | None]] | None = None,
    iv: list[str] | None = None,
    level_iv: list[str] | None = None,
    collapse: bool | None = None,
    steps: Literal[1, 2] | None = None,
    cov: Literal["robust", "unadjusted"] | None = None,
    small: bool | None = None,
    transform: Literal["fd", "fod"] | None = None,
    **kwargs,
) -> EstimationResults:
    """Estimate a dynamic panel model ``y_it = a_i + lambda_t + beta y_i,t-1 + gamma'X_it + e_it``.

    Options left at None are unset; setting one that does not apply to ``method`` raises
    :class:`~causalcts.errors.SpecificationError` naming the options the method takes.

    Parameters
    ----------
    formula
        ``"y ~ L(y, 1) + x + L(z, 0:1)"``; ``L(var, a:b)`` adds lags a..b of ``var``, ``F(var, k)`` a
        lead, ``D(var)`` the first difference (all gap-aware); formulaic's ``np.log(x)``, ``C(f)``,
        ``x:z``, ``I(x**2)`` also work (:func:`causalcts.data.design.build_design`).
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
        ``causalcts.registry.names()`` lists every method with its options.
    time_effects
        Period effects (dummies, or the two-way within transformation).
    gmm
        GMM methods: GMM-style instruments ``{variable: (first_lag, last_lag or None)}``. Default: the
        outcome from lag 2 on, ``{y: (2, None)}``.
    iv
        GMM methods: IV-style instruments (default: every regressor that is not the outcome or a GMM variable).
    level_iv
        System GMM only: instruments for the levels equation alone (xtabond2 ``eq(level)``).
    collapse
        diff-gmm, sys-gmm: one instrument column per lag instead of per period and lag (Roodman 2009b).
    steps
        diff-gmm, sys-gmm: 1 (default) or 2 (two-step efficient GMM).
    cov
        ``"robust"`` (default): clustered by entity (Windmeijer-corrected for two-step GMM; CRV1 with t(G - 1)
        for the least-squares methods); ``"unadjusted"``: classical. See ``docs/inference.md``.
    small
        GMM methods: xtabond2's small-sample scaling and t statistics.
    transform
        diff-gmm, sys-gmm: ``"fd"`` first differences (default) or ``"fod"`` forward orthogonal deviations.

    Returns
    -------
    EstimationResults
        Immutable; ``params``, ``std_errors``, ``conf_int()``, ``tests``, ``long_run(var)``, ``summary()``,
        ``spec`` (enough to refit), ``resid`` and ``fitted`` indexed by (entity, time).

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=100, n_weeks=12, seed=3)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data,
    ...                     method="diff-gmm", collapse=True)
    >>> list(res.params.index)
    ['L1.cr_velocity', 'ai_share']
    """
    check_option("method", method, METHODS)
    options = dict(
        gmm=gmm, iv=iv, level_iv=level_iv, collapse=collapse, steps=steps, cov=cov, small=small, transform=transform
    )
    options.update(kwargs)
    decl = _BY_NAME[method]
    given = check_options(method, options, decl["options"])
    return decl["fit"](formula, data, entity=entity, time=time, time_effects=time_effects, **given)
