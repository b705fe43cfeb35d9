"""Evaluation layer: sensitivity analysis, calibration and recovery studies (imports every layer below)."""

from causalcts.evaluation.calibration import SBCResult, sbc_dynamic, sbc_mixed
from causalcts.evaluation.ppc import posterior_predictive
from causalcts.evaluation.sensitivity import driver_sensitivity, prior_sensitivity

__all__ = [
    "SBCResult",
    "driver_sensitivity",
    "posterior_predictive",
    "prior_sensitivity",
    "sbc_dynamic",
    "sbc_mixed",
]
