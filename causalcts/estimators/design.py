"""Build regressor arrays from a panel and a parsed formula (levels, lags, transformations)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalcts.data.panel import Panel
from causalcts.errors import MissingColumnError, TooFewPeriodsError
from causalcts.estimators.formula import Term

__all__ = ["PanelArrays", "forward_orthogonal_deviations", "panel_arrays"]


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
    X = np.column_stack([panel.lag(t.variable, t.lag).to_numpy() if t.lag else panel.column(t.variable).to_numpy()
                         for t in terms])
    return PanelArrays(panel, y, X, [t.name for t in terms], panel.entity_codes, panel.periods)


def first_difference(panel: Panel, values: np.ndarray) -> np.ndarray:
    """x_t - x_{t-1} within entity (NaN across gaps and at each entity's first period)."""
    out = np.empty_like(values, dtype=float)
    if values.ndim == 1:
        return values - panel.lag(values, 1).to_numpy()
    for j in range(values.shape[1]):
        out[:, j] = values[:, j] - panel.lag(values[:, j], 1).to_numpy()
    return out


def forward_orthogonal_deviations(panel: Panel, values: np.ndarray) -> np.ndarray:
    r"""Forward orthogonal deviations, stored at the following period as xtabond2 does.

    .. math:: x^*_{i,t+1} = \sqrt{\tfrac{T_{it}}{T_{it}+1}}\,\Big(x_{it} - \tfrac{1}{T_{it}}\sum_{s>t} x_{is}\Big)

    where the mean runs over the entity's later *available* observations (T_it of them). The
    transformed value of period t is stored in the row of period t + 1 (NaN if that row is absent),
    so instrument lags mean the same as under first differences.
    """
    v = values if values.ndim == 2 else values[:, None]
    codes = panel.entity_codes
    out = np.full_like(v, np.nan, dtype=float)
    # rows are sorted by entity then period: suffix sums within each entity
    ok = np.all(np.isfinite(v), axis=1)
    vz = np.where(ok[:, None], v, 0.0)
    n = len(codes)
    starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
    ends = np.r_[starts[1:], n]
    fod_at = np.full_like(v, np.nan, dtype=float)
    for s, e in zip(starts, ends):
        block, okb = vz[s:e], ok[s:e].astype(float)
        suffix_sum = np.cumsum(block[::-1], axis=0)[::-1]
        suffix_cnt = np.cumsum(okb[::-1])[::-1]
        later_sum = suffix_sum - block
        later_cnt = suffix_cnt - okb
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_later = later_sum / later_cnt[:, None]
            c = np.sqrt(later_cnt / (later_cnt + 1.0))
            f = c[:, None] * (block - mean_later)
        f[(later_cnt == 0) | ~ok[s:e]] = np.nan
        fod_at[s:e] = f
    # shift to the next period's row
    pos = panel._shift_positions(1)  # row holding t-1 for each row t
    has = pos >= 0
    out[has] = fod_at[pos[has]]
    return out if values.ndim == 2 else out[:, 0]


def time_dummies(periods: np.ndarray, keep_periods: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """0/1 columns, one per period in ``keep_periods``."""
    D = (periods[:, None] == keep_periods[None, :]).astype(float)
    return D, [f"t{int(p)}" for p in keep_periods]


def require_rows(n_rows: int, k: int, what: str) -> None:
    if n_rows <= k:
        raise TooFewPeriodsError(
            f"{what} leaves {n_rows} usable observations for {k} coefficients; the panel is too short for "
            "the requested lags (or the lags reach across too many missing weeks)."
        )


def as_frame(values: np.ndarray, names: list[str]) -> pd.DataFrame:
    return pd.DataFrame(values, columns=names)
