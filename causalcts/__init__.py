"""causalcts: causal inference on software-delivery telemetry.

Measure what developer tools and practices (AI coding tools above all) do to
cost-to-serve-software (CTS-SW), CR velocity and deployment velocity, with
dynamic panel estimators that match Stata and R and simulations with known truth.
"""

from causalcts import datasets, metrics
from causalcts.api import fit
from causalcts.bayes import mixed
from causalcts.data import Panel
from causalcts.errors import CausalCTSError, ConvergenceWarning, DataWarning
from causalcts.estimators import nickell_bias
from causalcts.results import EstimationResults, compare
from causalcts.simulate import Simulation, Truth, simulate

__version__ = "0.1.0"

__all__ = [
    "CausalCTSError",
    "ConvergenceWarning",
    "DataWarning",
    "EstimationResults",
    "compare",
    "datasets",
    "mixed",
    "fit",
    "nickell_bias",
    "Panel",
    "Simulation",
    "Truth",
    "__version__",
    "metrics",
    "simulate",
]
