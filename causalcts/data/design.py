"""Build regressor arrays from a panel and a parsed formula (levels, lags, transformations)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalcts.data.formula import Term
from causalcts.data.panel import Panel
from causalcts.errors import MissingColumnError, TooFewPeriodsError

__all__ = ["PanelArrays", "panel_arrays", "require_rows"]


@dataclass
class PanelArrays:
    """Row-aligned arrays of a panel (rows sorted by entity and period)."""

    panel: Panel
    y: np.ndarray
    """Outcome, levels."""
    X: np.ndarray
    """Regressors in levels (lags applied), NaN where a lag reaches a missing period."""
    names: list[str]
    codes: np.ndarray
    periods: np.ndarray


def panel_arrays(panel: Panel, dep: str, terms: list[Term]) -> PanelArrays:
    """Outcome and lagged regressors in levels, gap-aware, aligned to the panel's rows."""
    cols = [dep] + [t.variable for t in terms]
    present = set(panel.columns)
    missing = sorted({c for c in cols if c not in present})
    if missing:
        raise MissingColumnError(
            f"The formula uses {missing}, which {'is' if len(missing) == 1 else 'are'} not in the data; "
            f"columns are {list(panel.columns)}."
        )
    max_lag = max([t.lag for t in terms] + [0])
    panel.require_periods(max_lag + 2, why=f"lags up to {max_lag}")
    y = panel.column(dep).to_numpy(dtype=float)
    X = np.column_stack(
        [panel.lag(t.variable, t.lag).to_numpy() if t.lag else panel.column(t.variable).to_numpy() for t in terms]
    )
    return PanelArrays(panel, y, X, [t.name for t in terms], panel.entity_codes, panel.periods)


def require_rows(n_rows: int, k: int, what: str) -> None:
    if n_rows <= k:
        raise TooFewPeriodsError(
            f"{what} leaves {n_rows} usable observations for {k} coefficients; the panel is too short for "
            "the requested lags (or the lags reach across too many missing weeks)."
        )
