"""causalcts: causal inference on software-delivery telemetry.

Measure what developer tools and practices (AI coding tools above all) do to
cost-to-serve-software (CTS-SW), CR velocity and deployment velocity, with
dynamic panel estimators that match Stata and R, rollout designs (event studies,
heterogeneity-robust DiD, TWFE weights, HonestDiD), Bayesian models with integrated
team effects, and simulations with known truth.
"""

from causalcts import datasets, diagnostics, did, inference, metrics, registry
from causalcts.api import fit
from causalcts.bayes import mixed, pool
from causalcts.data import Panel
from causalcts.diagnostics import check_exogeneity, fit_auto, honest_did, twfe_weights
from causalcts.did import att_gt, did_multiplegt_dyn, event_study, onset_cohort
from causalcts.errors import CausalCTSError, ConvergenceWarning, DataWarning, InstrumentWarning
from causalcts.estimators import nickell_bias
from causalcts.results import EstimationResults, Summary, compare
from causalcts.results import load as load_results
from causalcts.simulate import Simulation, Truth, simulate

__version__ = "0.2.0"

__all__ = [
    "CausalCTSError",
    "ConvergenceWarning",
    "DataWarning",
    "EstimationResults",
    "InstrumentWarning",
    "Panel",
    "Simulation",
    "Summary",
    "Truth",
    "__version__",
    "att_gt",
    "check_exogeneity",
    "compare",
    "datasets",
    "diagnostics",
    "did",
    "did_multiplegt_dyn",
    "event_study",
    "fit",
    "fit_auto",
    "honest_did",
    "inference",
    "load_results",
    "metrics",
    "mixed",
    "nickell_bias",
    "onset_cohort",
    "pool",
    "registry",
    "simulate",
    "twfe_weights",
]
