"""Bayesian and likelihood mixed models with integrated random effects (layer 3: imports data, results, errors)."""

from causalcts.bayes.mixed import mixed

__all__ = ["mixed"]
