"""Plots (top layer: may import every layer below, nothing imports it but the CLI)."""

from causalcts.plots.panel_plots import (
    plot_adoption,
    plot_caterpillar,
    plot_estimates,
    plot_outcome_by_adoption,
    plot_tornado,
)

__all__ = ["plot_adoption", "plot_caterpillar", "plot_estimates", "plot_outcome_by_adoption", "plot_tornado"]
