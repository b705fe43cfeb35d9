"""Top-level ``causalcts.fit``: frequentist estimators and the Bayesian dynamic panel behind one call.

This module sits above :mod:`causalcts.estimators` and :mod:`causalcts.bayes` so that neither imports the other.
"""

from __future__ import annotations

import inspect

from causalcts.bayes.dynamic import fit_bayes_dynamic
from causalcts.errors import SpecificationError
from causalcts.estimators.api import fit as _fit_frequentist

__all__ = ["fit"]

_BAYES_KEYS = {
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
}


def fit(formula, data, *, entity="team", time="week", method="diff-gmm", time_effects=True, **kwargs):
    """Estimate a dynamic panel model; ``method="bayes"`` gives the Bayesian model with integrated team effects.

    Frequentist methods and their options are documented in :func:`causalcts.estimators.fit`; the
    Bayesian model in :func:`causalcts.bayes.dynamic.fit_bayes_dynamic` (options ``random_slopes``,
    ``initial_conditions``, ``chains``, ``draws``, ``tune``, ``seed``, ``priors``, ``prior_scale``).
    Every method returns results with the same interface.

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=100, n_weeks=12, seed=3)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="within")
    >>> res.method
    'within'
    """
    if method == "bayes":
        unknown = set(kwargs) - _BAYES_KEYS
        if unknown:
            raise SpecificationError(
                f"Option(s) {sorted(unknown)} do not apply to method='bayes'; it takes {sorted(_BAYES_KEYS)}."
            )
        return fit_bayes_dynamic(formula, data, entity=entity, time_col=time, time_effects=time_effects, **kwargs)
    bayes_only = set(kwargs) & (_BAYES_KEYS - set(inspect.signature(_fit_frequentist).parameters))
    if bayes_only:
        raise SpecificationError(f"Option(s) {sorted(bayes_only)} apply only to method='bayes'.")
    return _fit_frequentist(formula, data, entity=entity, time=time, method=method, time_effects=time_effects, **kwargs)


fit.__doc__ += "\n\nFrequentist options\n-------------------\n" + (_fit_frequentist.__doc__ or "")
