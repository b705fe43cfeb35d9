"""Diagnostics (layer 5): checks that take data or a result and say what an estimate can be trusted for."""

from causalcts.diagnostics.auto import Recommendation, fit_auto, recommend
from causalcts.diagnostics.exogeneity import check_exogeneity, exogeneity_table
from causalcts.diagnostics.honest import honest_did
from causalcts.diagnostics.twfe_weights import TWFEWeights, twfe_weights

__all__ = [
    "Recommendation",
    "TWFEWeights",
    "check_exogeneity",
    "exogeneity_table",
    "fit_auto",
    "honest_did",
    "recommend",
    "twfe_weights",
]
