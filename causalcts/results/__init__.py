"""Results objects shared by every estimator (imports only the errors module)."""

from causalcts.results.base import EstimationResults, compare

__all__ = ["EstimationResults", "compare"]
