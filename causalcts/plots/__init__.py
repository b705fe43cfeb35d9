"""Plots (top layer: may import every layer below, nothing imports it but the CLI).

No backend is chosen at import: figures show in a notebook and are written to files by the CLI.
"""

from causalcts.plots.did_plots import plot_att_gt, plot_event_time, plot_twfe_weights
from causalcts.plots.event_plots import plot_event_study
from causalcts.plots.honest_plots import plot_honest_did
from causalcts.plots.montecarlo_plots import plot_bias_vs_t, plot_coverage, plot_rmse
from causalcts.plots.panel_plots import (
    plot_adoption,
    plot_caterpillar,
    plot_estimates,
    plot_outcome_by_adoption,
    plot_tornado,
)
from causalcts.plots.pooling_plots import plot_pooling

__all__ = [
    "plot_adoption",
    "plot_att_gt",
    "plot_bias_vs_t",
    "plot_caterpillar",
    "plot_coverage",
    "plot_estimates",
    "plot_event_study",
    "plot_event_time",
    "plot_honest_did",
    "plot_outcome_by_adoption",
    "plot_pooling",
    "plot_rmse",
    "plot_tornado",
    "plot_twfe_weights",
]
