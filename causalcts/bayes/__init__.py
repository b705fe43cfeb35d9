"""Bayesian and likelihood models with integrated random effects (layer 3: imports data, results, errors).

:func:`mixed`: linear mixed models (REML, ML, NUTS) with the random effects integrated out over per-team
sufficient statistics; :func:`pool`: partial pooling of effects across rollouts; the Bayesian dynamic panel
is ``causalcts.fit(method="bayes")`` (:mod:`causalcts.bayes.dynamic`).
"""

from causalcts.bayes.mixed import mixed
from causalcts.bayes.pooling import PooledResults, pool

__all__ = ["PooledResults", "mixed", "pool"]
