r"""Bayesian dynamic panel: :math:`y_{it} = a_i + \lambda_t + \beta y_{i,t-1} + \gamma'X_{it} + e_{it}`.

The team effects are random and integrated out exactly (:mod:`causalcts.bayes.integrated`), with
the initial-conditions problem handled in the spirit of Wooldridge (2005) and Mundlak (1978): the team
effect may depend on the team's first observed outcome :math:`y_{i0}` and on its means of the
time-varying regressors,

.. math:: a_i = \mu + \delta\, y_{i0} + \pi'\bar x_i + u_i, \qquad u_i \sim N(0, \sigma_a^2),

so :math:`a_i` may be correlated with the regressors (as fixed effects allow) while the model keeps
the likelihood of all :math:`T` periods, free of the Nickell bias of the within estimator.
``random_slopes=["ai_share"]`` lets the adoption effect vary by team (a second, correlated random
effect). The long-run effect :math:`\gamma/(1-\beta)` is computed draw by draw.

Week effects (``time_effects=True``) are removed by subtracting each week's cross-team mean from the
outcome, its lag and the regressors. In a balanced panel the span of the week dummies is invariant
under the model's covariance, so this gives the same posterior for the other coefficients as flat
week effects, up to a factor (N - 1)/N in the error variance; in unbalanced panels it is an
approximation.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from causalcts.bayes.dynamic_sem import fit_bayes_sem
from causalcts.bayes.formula_re import MixedFormula
from causalcts.bayes.mixed import _check_sampler_counts, _fit_nuts, resolve_cores, resolve_seed
from causalcts.bayes.results import BayesResults
from causalcts.data.design import build_design, require_rows
from causalcts.data.formula import formula_spec
from causalcts.data.panel import Panel, check_full_rank
from causalcts.errors import SpecificationError, check_option

__all__ = ["fit_bayes_dynamic"]


def fit_bayes_dynamic(
    formula: str,
    data,
    *,
    entity: str = "team",
    time_col: str = "week",
    time_effects: bool = True,
    random_slopes: list[str] | None = None,
    initial_conditions: bool = True,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    seed: int | np.random.Generator | None = None,
    priors: dict | None = None,
    prior_scale: float = 1.0,
    progressbar: bool = False,
    team_effect_draws: int = 100,
    sampler: str = "auto",
    cores: int | None = None,
    predetermined: list[str] | None = None,
) -> BayesResults:
    """Fit the Bayesian dynamic panel model (module docstring); called by ``causalcts.fit(method="bayes")``.

    With ``predetermined=[...]`` (regressors whose later values may respond to today's outcome error) the
    model is the Bayesian twin of the ML-SEM likelihood instead, :func:`causalcts.bayes.dynamic_sem.fit_bayes_sem`
    (``random_slopes`` and ``initial_conditions=False`` do not apply there; ``team_effect_draws`` is unused).

    Priors and sampler options are those of :func:`causalcts.mixed` (``method="nuts"``): defaults on
    internally standardised data, mapped back; ``seed`` None draws fresh entropy and the integer used is
    recorded in ``res.info["seed"]`` and ``res.spec["seed"]``; ``cores`` None runs every chain at once, up
    to the CPU count. ``res.spec`` holds what ``causalcts.fit`` needs to refit.
    """
    if predetermined is not None:
        if random_slopes or not initial_conditions:
            raise SpecificationError(
                "method='bayes' with predetermined= is the ML-SEM model (initial outcomes always in the joint "
                "model, no random slopes): drop random_slopes= and initial_conditions=False."
            )
        return fit_bayes_sem(
            formula,
            data,
            predetermined=predetermined,
            entity=entity,
            time_col=time_col,
            time_effects=time_effects,
            chains=chains,
            draws=draws,
            tune=tune,
            seed=seed,
            priors=priors,
            prior_scale=prior_scale,
            progressbar=progressbar,
            cores=cores,
            sampler=sampler,
        )
    t0 = time.perf_counter()
    check_option("sampler", sampler, ("auto", "nutpie", "pymc", "numpyro"))
    _check_sampler_counts(chains, draws, tune, team_effect_draws)
    seed = resolve_seed(seed)
    n_cores = resolve_cores(cores, chains)
    fspec = formula_spec(formula)
    dep, terms = fspec.outcome, list(fspec.terms)
    outcome_lags = tuple(t.name for t in terms if t.variable == dep and t.lag > 0)
    if not outcome_lags:
        raise SpecificationError(
            "method='bayes' is the dynamic panel model: include a lag of the outcome, e.g. L(y, 1)."
        )
    slopes = list(random_slopes or [])
    names = [t.name for t in terms]
    unknown = [s for s in slopes if s not in names]
    if unknown:
        raise SpecificationError(f"random_slopes {unknown} are not regressors of the formula; regressors are {names}.")
    if len(slopes) > 1:
        raise SpecificationError("At most one random slope (with the random intercept) is supported.")
    panel = data if isinstance(data, Panel) else Panel(data, entity=entity, time=time_col, columns=list(fspec.numeric))
    arrays = build_design(fspec, panel)
    terms, names = arrays.terms, arrays.names  # categorical terms now expanded to their columns
    ok = np.isfinite(arrays.y) & np.all(np.isfinite(arrays.X), axis=1)
    require_rows(int(ok.sum()), len(terms) + 2, "method='bayes'")
    codes_all = arrays.codes
    # initial condition: each team's first observed outcome
    first_row = np.r_[0, np.flatnonzero(np.diff(codes_all)) + 1]
    y0_team = np.full(panel.n_entities, np.nan)
    y0_team[codes_all[first_row]] = arrays.y[first_row]
    y, X = arrays.y[ok], arrays.X[ok]
    codes, periods = codes_all[ok], arrays.periods[ok]
    used_teams, codes = np.unique(codes, return_inverse=True)
    if time_effects:
        per, pidx = np.unique(periods, return_inverse=True)
        cnt = np.bincount(pidx).astype(float)
        y = y - (np.bincount(pidx, weights=y) / cnt)[pidx]
        X = X - np.column_stack([np.bincount(pidx, weights=X[:, j]) / cnt for j in range(X.shape[1])])[pidx]
    extra, extra_names = [], []
    if initial_conditions:
        extra.append(y0_team[used_teams][codes])
        extra_names.append(f"initial({dep})")
        n_per = np.bincount(codes).astype(float)
        for j, t in enumerate(terms):
            if t.variable == dep:
                continue
            means = np.bincount(codes, weights=X[:, j]) / n_per
            extra.append(means[codes])
            extra_names.append(f"mean({t.name})")
    Xf = np.column_stack([X, *extra, np.ones(len(y))]) if extra else np.column_stack([X, np.ones(len(y))])
    fixed_names = names + extra_names + ["Intercept"]
    try:
        check_full_rank(pd.DataFrame(Xf, columns=fixed_names))
    except Exception as err:
        raise type(err)(f"In the Bayesian dynamic panel design: {err}") from None
    re_names = ["Intercept"] + slopes
    Z = np.column_stack([np.ones(len(y))] + [X[:, names.index(s)] for s in slopes])
    order = np.argsort(codes, kind="stable")
    labels = pd.Index(panel.entities[used_teams], name=panel.entity)
    spec = MixedFormula(
        outcome=dep, fixed=tuple(fixed_names), random=tuple(re_names), group=panel.entity, correlated=bool(slopes)
    )
    with warnings.catch_warnings():
        res = _fit_nuts(
            spec,
            y[order],
            Xf[order],
            Z[order],
            codes[order],
            labels,
            formula=formula,
            chains=chains,
            draws=draws,
            tune=tune,
            seed=seed,
            priors=priors or {},
            prior_scale=prior_scale,
            sampler=sampler,
            cores=n_cores,
            progressbar=progressbar,
            team_effect_draws=team_effect_draws,
            t0=t0,
        )
    refit = {
        "formula": formula,
        "method": "bayes",
        "entity": entity,
        "time": time_col,
        "time_effects": bool(time_effects),
        "random_slopes": slopes,
        "initial_conditions": bool(initial_conditions),
        "chains": chains,
        "draws": draws,
        "tune": tune,
        "seed": seed,
        "priors": dict(priors or {}),
        "prior_scale": prior_scale,
        "team_effect_draws": team_effect_draws,
        "sampler": sampler,
        "cores": cores,
    }
    return BayesResults(
        params=res.params,
        std_errors=res.std_errors,
        cov=res.cov,
        nobs=res.nobs,
        n_entities=res.n_entities,
        method="bayes",
        formula=formula,
        cov_type="posterior",
        dist="normal",
        outcome_lags=outcome_lags,
        cov_re=res.cov_re,
        scale=res.scale,
        idata=res.idata,
        diagnostics=res.diagnostics,
        converged=res.converged,
        info={
            **dict(res.info),
            "time_effects": bool(time_effects),
            "initial_conditions": bool(initial_conditions),
            "random_slopes": slopes,
        },
        spec=refit,
    )


def _fit_method(formula, data, *, entity="team", time="week", time_effects=True, **options):
    """Registry call shape (``time`` rather than ``time_col``) for :func:`fit_bayes_dynamic`."""
    return fit_bayes_dynamic(formula, data, entity=entity, time_col=time, time_effects=time_effects, **options)


#: This family's methods, read by :mod:`causalcts.registry` (keys documented there).
METHODS_DECLARED = (
    dict(
        name="bayes",
        family="bayes",
        fit=_fit_method,
        options=(
            "random_slopes",
            "initial_conditions",
            "chains",
            "draws",
            "tune",
            "seed",
            "priors",
            "prior_scale",
            "progressbar",
            "team_effect_draws",
            "sampler",
            "cores",
            "predetermined",
        ),
        description="Bayesian dynamic panel, random team effects integrated out (Wooldridge initial conditions); "
        "with predetermined=, the Bayesian ML-SEM (team effect a latent variable, feedback covariances)",
        assumes="sequential exogeneity; team effect linear in y_i0 and the regressors' team means; normal errors",
    ),
)
