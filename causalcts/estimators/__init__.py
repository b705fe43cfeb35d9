"""Frequentist dynamic-panel estimators (imports the data and results layers only)."""

from causalcts.estimators.api import METHODS, fit
from causalcts.estimators.bias import nickell_bias

__all__ = ["METHODS", "fit", "nickell_bias"]
