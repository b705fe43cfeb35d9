"""Results objects shared by every estimator (imports only the errors module)."""

from causalcts.results.base import EstimationResults, compare, load
from causalcts.results.summary import Summary

__all__ = ["EstimationResults", "Summary", "compare", "load"]
