"""Plots (top layer: may import every layer below, nothing imports it but the CLI)."""

from causalcts.plots.montecarlo_plots import plot_bias_vs_t, plot_coverage, plot_rmse
from causalcts.plots.panel_plots import (
    plot_adoption,
    plot_caterpillar,
    plot_estimates,
    plot_outcome_by_adoption,
    plot_tornado,
)

__all__ = [
    "plot_adoption",
    "plot_bias_vs_t",
    "plot_caterpillar",
    "plot_coverage",
    "plot_estimates",
    "plot_outcome_by_adoption",
    "plot_rmse",
    "plot_tornado",
]
