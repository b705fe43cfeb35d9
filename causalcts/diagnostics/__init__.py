"""Diagnostics (layer 5): checks that take data or a result and say what an estimate can be trusted for."""

from causalcts.diagnostics.honest import honest_did
from causalcts.diagnostics.twfe_weights import TWFEWeights, twfe_weights

__all__ = ["TWFEWeights", "honest_did", "twfe_weights"]
