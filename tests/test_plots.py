"""Figures: no backend chosen at import, and each figure says what it shows and what it leaves out."""

import importlib
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from causalcts.plots import plot_adoption, plot_bias_vs_t, plot_caterpillar, plot_coverage, plot_rmse, plot_tornado

INLINE = "module://matplotlib_inline.backend_inline"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_importing_and_plotting_keeps_the_notebook_backend():
    """A Jupyter kernel runs the inline backend; importing causalcts.plots and plotting must not switch it."""
    importlib.import_module("matplotlib_inline")
    code = textwrap.dedent(f"""
        import matplotlib
        matplotlib.use({INLINE!r})
        import pandas as pd
        import causalcts.plots
        sens = pd.DataFrame({{"effect": [1.0], "lower": [0.5], "upper": [1.5]}}, index=["cr_velocity"])
        causalcts.plots.plot_tornado(sens)
        print(matplotlib.get_backend())
    """)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # what a notebook user has
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == INLINE


def test_tornado_says_the_ranking_is_associational():
    sens = pd.DataFrame(
        {"effect": [-8.0, 3.0], "lower": [-10.0, 1.0], "upper": [-6.0, 5.0]}, index=["cr_velocity", "rollback_rate"]
    )
    title = plot_tornado(sens).get_title()
    assert "associations, not causal effects" in title
    assert "What drives" not in title


class _Idata(dict):
    def groups(self):
        return list(self)


def _sampled_team_effects(n_teams: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    draws = rng.normal(size=(2, 25, n_teams, 1)) * 0.1 + rng.normal(size=(1, 1, n_teams, 1))
    te = xr.Dataset(
        {"team_effect": (("chain", "draw", "team", "re_term"), draws)},
        coords={"team": np.arange(n_teams), "re_term": ["Intercept"]},
    )
    return SimpleNamespace(idata=_Idata(team_effects=te)), draws.mean(axis=(0, 1))[:, 0]


def test_caterpillar_says_how_many_teams_it_shows_and_keeps_the_extremes():
    result, means = _sampled_team_effects(200)
    ax = plot_caterpillar(result, max_groups=60)
    assert "showing 60 of 200 teams" in ax.get_title()
    shown = ax.lines[0].get_ydata()
    assert len(shown) == 60
    # the lowest and highest teams are among those drawn
    assert shown.min() == pytest.approx(means.min()) and shown.max() == pytest.approx(means.max())
    small, _ = _sampled_team_effects(30)
    assert "all 30 teams" in plot_caterpillar(small, max_groups=60).get_title()


def test_adoption_plot_says_it_samples_teams():
    import causalcts

    ax = plot_adoption(causalcts.simulate(50, 6, seed=1).data, n_teams=10)
    assert "10 of 50 teams (random sample)" in [t.get_text() for t in ax.get_legend().get_texts()]


def _summary(coverage, mcse, n=400):
    k = len(coverage)
    return pd.DataFrame(
        {
            "design_id": [f"d{i}" for i in range(k)],
            "design": [f"T={8 + i}" for i in range(k)],
            "method": "within",
            "term": "x",
            "n": n,
            "coverage90": coverage,
            "coverage90_mcse": mcse,
        }
    )


def test_coverage_axis_zooms_to_the_data_and_the_nominal_band():
    ax = plot_coverage(_summary([0.86, 0.91, np.nan], [0.017, 0.014, np.nan]), "x", level=0.90)
    lo, hi = ax.get_xlim()
    band = 2 * np.sqrt(0.9 * 0.1 / 400)
    # every point with its 2-MCSE bar and the nominal band are inside the axis, and the axis is not 0-1
    assert lo <= min(0.86 - 2 * 0.017, 0.9 - band) and hi >= max(0.91 + 2 * 0.014, 0.9 + band)
    assert hi - lo < 0.25
    # the design with no coverage is named, not dropped silently
    assert "T=10" in ax.get_title() and "not shown" in ax.get_title()
    wide = plot_coverage(_summary([0.2, 0.9], [0.02, 0.015]), "x").get_xlim()
    assert wide[0] < 0.2 - 2 * 0.02 and wide[1] <= 1.0


def test_bias_and_rmse_plots_say_which_designs_they_show():
    rows = []
    for i, (T, beta) in enumerate([(8, 0.5), (26, 0.5), (8, 0.95)]):
        for m in ("within", "jackknife"):
            rows.append(
                {
                    "design_id": f"d{i}",
                    "method": m,
                    "term": "L1.y",
                    "n_weeks": T,
                    "persistence": beta,
                    "effect": 0.1,
                    "truth": beta,
                    "bias": -0.1,
                    "bias_mcse": 0.01,
                    "rmse": 0.12,
                    "rmse_mcse": 0.01,
                }
            )
    s = pd.DataFrame(rows)
    assert "2 of 3 designs: beta=0.5" in plot_bias_vs_t(s, "L1.y").get_title()
    assert "mean over 3 designs" in plot_rmse(s, "L1.y").get_xlabel()
