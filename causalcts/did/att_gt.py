r"""Callaway and Sant'Anna (2021) group-time average treatment effects for staggered rollouts.

For each onset cohort :math:`g` (the period a team is first treated) and period :math:`t`, the
group-time effect is a two-period, two-group difference in differences between cohort :math:`g` and a
comparison group (never-treated teams, or teams not yet treated by :math:`t`), over the base period
:math:`b` and :math:`t`:

.. math::

    ATT(g,t) = E[Y_t - Y_b \mid G = g] - E[Y_t - Y_b \mid C = 1]

with the comparison-group change estimated by outcome regression (``est="reg"``), inverse probability
weighting (``est="ipw"``, normalised weights) or the doubly robust combination of the two
(``est="dr"``, Sant'Anna and Zhao 2020) when covariates are given. For post-treatment cells the base
period is :math:`b = g - 1 - \delta` (``anticipation`` :math:`\delta`); for pre-treatment cells it is
:math:`t - 1` (``base_period="varying"``) or :math:`g - 1 - \delta` (``"universal"``).

Standard errors come from the influence functions: with :math:`\psi_i` the n-vector of unit
influence functions stacked over cells, :math:`\widehat{V} = \sum_i \psi_i \psi_i^\top / n^2`. The
numbers follow R's ``did`` (version 2.5.1) and ``DRDID`` line by line; ``tests/test_att_gt.py``
checks them against R to 1e-9.

References
----------
Callaway, B. and Sant'Anna, P. H. C. (2021). Difference-in-differences with multiple time periods.
Journal of Econometrics 225(2), 200-230.
Sant'Anna, P. H. C. and Zhao, J. (2020). Doubly robust difference-in-differences estimators.
Journal of Econometrics 219(1), 101-122.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd
from scipy import linalg, special, stats

from causalcts.data.panel import Panel, _as_dates, numeric_column
from causalcts.errors import (
    CausalCTSError,
    CohortNotConstantError,
    ConvergenceWarning,
    DataWarning,
    DuplicateKeyError,
    EmptyPanelError,
    MissingColumnError,
    NoControlGroupError,
    NonNumericError,
    RangeError,
    check_option,
    describe_rows,
)
from causalcts.results.base import EstimationResults

__all__ = ["AggregatedATT", "ATTgtResults", "BootstrapBands", "att_gt"]

_TINY_SE = np.sqrt(np.finfo(float).eps) * 10  # R did: standard errors below this are reported as missing
_TRIM = 0.995  # DRDID: control units with a propensity score above this get no weight


# ---------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class _Design:
    y: np.ndarray  # n x T outcomes
    x: np.ndarray  # n x T x k design (intercept first)
    cohort: np.ndarray  # n onset cohorts, 0 = never treated
    periods: np.ndarray  # T sorted periods
    groups: np.ndarray  # treated cohorts that get ATT(g,t)
    entities: pd.Index
    period_dates: tuple[str, ...] | None = None  # date of each period when the time column holds dates


_numeric = numeric_column  # one implementation, in the data layer


def _prepare(data, outcome, entity, time, cohort, covariates, control, anticipation) -> _Design:
    if not isinstance(data, pd.DataFrame):
        raise MissingColumnError(f"att_gt needs a pandas DataFrame, not {type(data).__name__}.")
    needed = [outcome, entity, time, cohort, *covariates]
    missing = [c for c in dict.fromkeys(needed) if c not in data.columns]
    if missing:
        raise MissingColumnError(f"Column(s) {missing} not in the data; columns are {list(data.columns)}.")
    if data.shape[0] == 0:
        raise EmptyPanelError("The data has no rows.")
    frame = data[list(dict.fromkeys(needed))].copy()
    if frame[entity].isna().any():
        raise CausalCTSError(
            f"The entity column {entity!r} is missing in {describe_rows(frame.index[frame[entity].isna()])}."
        )
    dates = _as_dates(frame[time], time)  # datetimes or ISO 8601 text, parsed as Panel does; None for numbers
    period_dates: tuple[str, ...] | None = None
    if dates is not None:
        frame[time], g, period_dates = _date_periods(frame, entity, time, cohort, dates)
    else:
        tvals = _numeric(frame, time)
        if tvals.isna().any() or (tvals != np.round(tvals)).any():
            bad = tvals.isna() | (tvals != np.round(tvals))
            raise NonNumericError(
                f"Time column {time!r} must hold whole numbers; {describe_rows(frame.index[bad])} do not."
            )
        frame[time] = tvals
        if pd.api.types.is_datetime64_any_dtype(frame[cohort]):
            raise NonNumericError(
                f"Cohort column {cohort!r} holds dates, but the time column {time!r} holds numbers: give cohorts in "
                "the same units as the time column (0 or NaN for never treated)."
            )
        g = _numeric(frame, cohort)
    if (g < 0).any():
        raise RangeError(
            f"Cohort column {cohort!r} must be 0 (never treated) or an onset period; "
            f"{describe_rows(frame.index[g < 0])} are negative."
        )
    frame[cohort] = g.where(np.isfinite(g), 0.0)  # NaN and inf code never-treated teams, like 0
    varying = frame.groupby(entity, sort=True)[cohort].nunique()
    if (varying > 1).any():
        teams = list(varying.index[varying > 1][:5])
        raise CohortNotConstantError(
            f"Cohort column {cohort!r} changes within {int((varying > 1).sum())} {entity} value(s), e.g. {teams}; "
            "each team has one onset period (0 or NaN for never treated)."
        )
    for c in [outcome, *covariates]:
        frame[c] = _numeric(frame, c)
    bad = ~np.isfinite(frame[[outcome, *covariates]].to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        warnings.warn(
            f"Dropped {int(bad.sum())} of {len(frame)} rows with NaN or infinite values in {[outcome, *covariates]}.",
            DataWarning,
            stacklevel=3,
        )
        frame = frame.loc[~bad]
    dup = frame.duplicated([entity, time], keep=False)
    if dup.any():
        raise DuplicateKeyError(
            f"{int(dup.sum())} rows share an ({entity}, {time}) pair: {describe_rows(frame.index[dup])}."
        )
    periods = np.sort(frame[time].unique())
    counts = frame.groupby(entity)[time].size()
    short = counts.index[counts < len(periods)]
    if len(short):
        warnings.warn(
            f"Dropped {len(short)} {entity} value(s) not observed in all {len(periods)} periods "
            f"({int(frame[entity].isin(short).sum())} rows), e.g. {list(short[:3])}: att_gt needs a balanced panel.",
            DataWarning,
            stacklevel=3,
        )
        frame = frame.loc[~frame[entity].isin(short)]
    if frame.shape[0] == 0:
        raise EmptyPanelError("No rows are left after dropping incomplete teams.")
    unit_g = frame.groupby(entity, sort=True)[cohort].first()
    late = unit_g > periods.max() + anticipation
    if late.any():
        warnings.warn(
            f"{int(late.sum())} {entity} value(s) first treated after the last period (+ anticipation) are "
            "recoded as never treated (cohort 0).",
            DataWarning,
            stacklevel=3,
        )
        unit_g[late] = 0.0
    early = (unit_g > 0) & (unit_g <= periods[0] + anticipation)
    if early.any():
        warnings.warn(
            f"Dropped {int(early.sum())} {entity} value(s) already treated in the first period {periods[0]:g} "
            f"(cohort <= first period + anticipation), e.g. {list(unit_g.index[early][:3])}.",
            DataWarning,
            stacklevel=3,
        )
        unit_g = unit_g[~early]
        frame = frame.loc[frame[entity].isin(unit_g.index)]
    groups = np.sort(unit_g[unit_g > 0].unique())
    if not (unit_g == 0).any():
        if control == "never":
            raise NoControlGroupError(
                f"control='never' needs never-treated teams (cohort {cohort!r} equal to 0 or NaN), and there are "
                f"none: every {entity} is first treated in one of {[float(v) for v in groups]}. "
                "Use control='notyet' to compare with teams not yet treated."
            )
        latest = groups.max()
        cut = latest - anticipation
        warnings.warn(
            f"No never-treated teams: the last cohort {latest:g} serves only as a not-yet-treated comparison, "
            f"and the {int((frame[time] >= cut).sum())} rows from period {cut:g} on are dropped.",
            DataWarning,
            stacklevel=3,
        )
        frame = frame.loc[frame[time] < cut]
        periods = periods[periods < cut]
        groups = groups[groups < latest]
    groups = groups[groups > periods[0] + anticipation]
    if len(groups) == 0:
        raise EmptyPanelError(f"No treated cohort in {cohort!r} has a period before its onset to compare with.")
    if len(periods) < 2:
        raise EmptyPanelError(f"att_gt needs at least two periods of {time!r}; the data has {len(periods)}.")
    frame = frame.sort_values([entity, time])
    entities = pd.Index(unit_g.index, name=entity)
    n, T = len(entities), len(periods)
    y = frame[outcome].to_numpy(dtype=float).reshape(n, T)
    cov = frame[list(covariates)].to_numpy(dtype=float).reshape(n, T, len(covariates))
    x = np.concatenate([np.ones((n, T, 1)), cov], axis=2)
    if period_dates is not None:
        dates_of = dict(enumerate(period_dates, start=1))
        period_dates = tuple(dates_of[int(p)] for p in periods)
    return _Design(y, x, unit_g.to_numpy(dtype=float), periods, groups, entities, period_dates)


def _date_periods(
    frame: pd.DataFrame, entity: str, time: str, cohort: str, dates: pd.Series
) -> tuple[pd.Series, pd.Series, tuple[str, ...]]:
    """Date times and cohorts as whole periods counted from 1 (the first date), so 0 stays "never treated".

    The periods are those of :class:`causalcts.data.panel.Panel` (the calendar or step it infers); a cohort
    date is the period that holds it, NaT, NaN or 0 mean never treated, and cohorts before the first period
    become period 1 (treated from the start). Returns the periods, the cohorts and each period's date.
    """
    panel = Panel(frame[[entity, time]].assign(**{time: dates}), entity=entity, time=time, min_entities=1)
    periods = pd.Series(panel.period_of(dates) + 1, index=frame.index, dtype=float)
    raw = frame[cohort]
    if pd.api.types.is_bool_dtype(raw):
        raise NonNumericError(f"Cohort column {cohort!r} must hold onset dates like the time column {time!r}.")
    never = raw.isna().to_numpy() | np.array(
        [isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and (v == 0 or np.isinf(v)) for v in raw],
        dtype=bool,
    )
    numbers = (
        np.array([isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in raw], dtype=bool) & ~never
    )
    if numbers.any():
        raise NonNumericError(
            f"Cohort column {cohort!r} must hold onset dates like the time column {time!r} (NaT, NaN or 0 for never "
            f"treated); {describe_rows(frame.index[numbers])} hold the number(s) "
            f"{sorted(set(raw[numbers].tolist()))[:3]}. Convert them with pandas.to_datetime, or pass integer periods "
            "in both columns."
        )
    present = raw.where(~never)
    texts = all(isinstance(v, str) for v in present.dropna())
    onset = pd.to_datetime(present, errors="coerce", **({"format": "ISO8601"} if texts else {}))
    bad = onset.isna().to_numpy() & ~never
    if bad.any():
        raise NonNumericError(
            f"Cohort column {cohort!r} must hold onset dates like the time column {time!r} (datetimes or ISO 8601 "
            f"text such as '2025-01-06'; NaT, NaN or 0 for never treated); {describe_rows(frame.index[bad])} hold "
            f"{list(pd.unique(raw[bad]))[:3]}."
        )
    g = np.zeros(len(frame))
    if (~never).any():
        g[~never] = np.maximum(panel.period_of(onset[~never]) + 1, 1)
    first = pd.Series(periods.to_numpy(), index=dates.to_numpy()).groupby(level=0).first()
    labels = {int(p): str(d.date()) if d == d.normalize() else str(d) for d, p in first.items()}
    span = range(1, int(periods.max()) + 1)
    return periods, pd.Series(g, index=frame.index), tuple(labels.get(p, "") for p in span)


# ---------------------------------------------------------------------------------------- 2x2 DiD
def _logit(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Maximum-likelihood logit fitted values (Newton-Raphson to machine precision)."""
    beta = np.zeros(x.shape[1])
    for _ in range(100):
        p = special.expit(x @ beta)
        step = linalg.solve(x.T @ (x * (p * (1 - p))[:, None]), x.T @ (d - p), assume_a="pos")
        beta = beta + step
        if np.max(np.abs(step)) < 1e-13 * (1 + np.max(np.abs(beta))):
            return special.expit(x @ beta)
    warnings.warn("The propensity-score logit did not converge in 100 Newton steps.", ConvergenceWarning, stacklevel=4)
    return special.expit(x @ beta)


def _ols_parts(x, dy, d):
    """Outcome regression on the comparison units: fitted changes and their asymptotic linear representation."""
    n = len(d)
    c = d == 0
    coef = linalg.lstsq(x[c], dy[c])[0]
    fitted = x @ coef
    xpx = (x[c].T @ x[c]) / n
    if 1 / np.linalg.cond(xpx) < np.finfo(float).eps:
        raise CausalCTSError(
            "The comparison-group regression on the covariates is singular; remove collinear covariates."
        )
    lin_rep = ((1 - d) * (dy - fitted))[:, None] * x @ np.linalg.inv(xpx)
    return fitted, lin_rep


def _ps_parts(x, d):
    n = len(d)
    ps = np.minimum(_logit(x, d), 1 - 1e-6)
    hessian = linalg.inv(x.T @ (x * (ps * (1 - ps))[:, None])) * n
    lin_rep = ((d - ps)[:, None] * x) @ hessian
    trim = np.where(d == 1, True, ps < _TRIM)
    return ps, lin_rep, trim


def _did_reg(dy, d, x):
    fitted, lin_rep = _ols_parts(x, dy, d)
    eta_t = np.mean(d * dy) / np.mean(d)
    eta_c = np.mean(d * fitted) / np.mean(d)
    inf_t = (d * dy - d * eta_t) / np.mean(d)
    inf_c = (d * fitted - d * eta_c + lin_rep @ np.mean(d[:, None] * x, axis=0)) / np.mean(d)
    return eta_t - eta_c, inf_t - inf_c


def _did_ipw(dy, d, x):
    ps, lin_rep, trim = _ps_parts(x, d)
    w_t = trim * d
    w_c = trim * ps * (1 - d) / (1 - ps)
    eta_t = np.mean(w_t * dy) / np.mean(w_t)
    eta_c = np.mean(w_c * dy) / np.mean(w_c)
    inf_t = (w_t * dy - w_t * eta_t) / np.mean(w_t)
    m2 = np.mean((w_c * (dy - eta_c))[:, None] * x, axis=0)
    inf_c = (w_c * dy - w_c * eta_c + lin_rep @ m2) / np.mean(w_c)
    return eta_t - eta_c, inf_t - inf_c


def _did_dr(dy, d, x):
    ps, lin_ps, trim = _ps_parts(x, d)
    fitted, lin_ols = _ols_parts(x, dy, d)
    w_t = trim * d
    w_c = trim * ps * (1 - d) / (1 - ps)
    resid = dy - fitted
    eta_t = np.mean(w_t * resid) / np.mean(w_t)
    eta_c = np.mean(w_c * resid) / np.mean(w_c)
    inf_t = (w_t * resid - w_t * eta_t - lin_ols @ np.mean(w_t[:, None] * x, axis=0)) / np.mean(w_t)
    m2 = np.mean((w_c * (resid - eta_c))[:, None] * x, axis=0)
    m3 = np.mean(w_c[:, None] * x, axis=0)
    inf_c = (w_c * resid - w_c * eta_c + lin_ps @ m2 - lin_ols @ m3) / np.mean(w_c)
    return eta_t - eta_c, inf_t - inf_c


_ESTIMATORS = {"reg": _did_reg, "ipw": _did_ipw, "dr": _did_dr}


def _cells(design: _Design, est, control, anticipation, base_period):
    """Every ATT(g,t): estimates, the n x K influence-function matrix and the cell table."""
    y, x, g_unit, tl = design.y, design.x, design.cohort, design.periods
    n, T = y.shape
    tfac = 1 if base_period == "varying" else 0
    rows, att, infl = [], [], []
    for g in design.groups:
        pret_g = int(np.flatnonzero(tl + anticipation < g)[-1])
        for t in range(T - tfac):
            now = t + tfac
            pret = pret_g if (base_period == "universal" or g <= tl[now]) else t
            post = bool(g <= tl[now])
            rows.append((g, tl[now], tl[pret], post))
            if base_period == "universal" and pret == now:
                att.append(0.0)
                infl.append(np.zeros(n))
                continue
            if control == "never":
                comp = g_unit == 0
            else:
                threshold = tl[max(t, pret) + tfac] + anticipation
                comp = (g_unit == 0) | ((g_unit > threshold) & (g_unit != g))
            keep = (g_unit == g) | comp
            if not comp.any():
                warnings.warn(
                    f"No comparison teams for cohort {g:g} in period {tl[now]:g}: ATT({g:g},{tl[now]:g}) is missing.",
                    DataWarning,
                    stacklevel=3,
                )
                att.append(np.nan)
                infl.append(np.full(n, np.nan))
                continue
            d = (g_unit[keep] == g).astype(float)
            dy = y[keep, now] - y[keep, pret]
            a, psi = _ESTIMATORS[est](dy, d, x[keep, min(now, pret)])
            full = np.zeros(n)
            full[keep] = psi * (n / keep.sum())
            att.append(a)
            infl.append(full)
    cells = pd.DataFrame(rows, columns=["cohort", "time", "base", "post"])
    return np.asarray(att), np.column_stack(infl), cells


# ------------------------------------------------------------------------------------- bootstrap
_MAMMEN = ((1 - np.sqrt(5)) / 2, (1 + np.sqrt(5)) / 2, (1 + np.sqrt(5)) / (2 * np.sqrt(5)))


def _multiplier_draws(psi: np.ndarray, B: int, rng: np.random.Generator, weights: str) -> np.ndarray:
    """B x K draws of sqrt(n) * mean(v_i psi_i) with i.i.d. multipliers v (R's BMisc::multiplier_bootstrap)."""
    n = psi.shape[0]
    out = np.empty((B, psi.shape[1]))
    chunk = max(1, min(B, 2_000_000 // max(n, 1)))
    for start in range(0, B, chunk):
        m = min(chunk, B - start)
        u = rng.random((m, n))
        if weights == "mammen":
            k1, k2, p = _MAMMEN
            v = np.where(u < p, k1, k2)
        else:
            v = np.where(u < 0.5, -1.0, 1.0)
        out[start : start + m] = v @ psi / n
    return np.sqrt(n) * out


def _type1_quantile(sorted_vals: np.ndarray, p: float) -> float:
    """R's quantile(type = 1): the order statistic x_(ceil(B p))."""
    k = int(np.ceil(len(sorted_vals) * p))
    return float(sorted_vals[max(k, 1) - 1])


@dataclass(frozen=True)
class BootstrapBands:
    """Multiplier-bootstrap standard errors and uniform (simultaneous) confidence bands.

    Attributes
    ----------
    table
        One row per estimate: ``estimate``, ``std_error`` (bootstrap, IQR-based as in R's did),
        ``lower`` and ``upper`` (the uniform band: it covers every estimate at once with probability
        ``level``).
    crit_value
        The sup-t critical value of the band (above the pointwise normal quantile).
    overall_std_error
        Bootstrap standard error of the overall aggregate (None for ATT(g,t) bands).
    """

    table: pd.DataFrame
    crit_value: float
    level: float
    B: int
    weights: str
    overall_std_error: float | None = None


def _bootstrap(estimates, psi, B, seed, weights, level, overall_psi=None) -> BootstrapBands:
    check_option("weights", weights, ("mammen", "rademacher"))
    if not (isinstance(B, (int, np.integer)) and B >= 2):
        raise CausalCTSError(f"B={B!r} must be a whole number of bootstrap draws, at least 2 (e.g. 999).")
    if not 0 < level < 1:
        raise CausalCTSError(f"level={level} must lie strictly between 0 and 1 (e.g. 0.95).")
    rng = np.random.default_rng(seed)
    full = psi if overall_psi is None else np.column_stack([psi, overall_psi])
    n = full.shape[0]
    draws = _multiplier_draws(full, int(B), rng, weights)
    iqr_norm = stats.norm.ppf(0.75) - stats.norm.ppf(0.25)
    srt = np.sort(draws, axis=0)
    sigma = np.array(
        [(_type1_quantile(srt[:, j], 0.75) - _type1_quantile(srt[:, j], 0.25)) / iqr_norm for j in range(full.shape[1])]
    )
    ok = np.isfinite(draws).all(axis=0) & ((draws**2).sum(axis=0) > _TINY_SE)
    sigma = np.where(ok, sigma, np.nan)
    k = psi.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.abs(draws[:, :k] / sigma[:k])
    scaled = np.where(np.isfinite(scaled), scaled, -np.inf)
    sup = scaled.max(axis=1)
    sup = np.sort(sup[np.isfinite(sup)])
    crit = _type1_quantile(sup, level) if len(sup) else np.nan
    se = sigma / np.sqrt(n)
    est = np.asarray(estimates, dtype=float)
    table = pd.DataFrame(
        {"estimate": est, "std_error": se[:k], "lower": est - crit * se[:k], "upper": est + crit * se[:k]},
    )
    overall = None if overall_psi is None else float(se[k])
    return BootstrapBands(table, float(crit), level, int(B), weights, overall)


# -------------------------------------------------------------------------------------- aggregation
def _wif(keepers, pg, g_unit, cell_group):
    """Influence of estimating the cohort shares pg on a pg-weighted average over ``keepers``."""
    spg = pg[keepers].sum()
    centered = np.column_stack([(g_unit == cell_group[k]).astype(float) - pg[k] for k in keepers])
    return centered / spg - np.outer(centered.sum(axis=1), pg[keepers] / spg**2)


def _agg(att, psi, keepers, pg, g_unit, cell_group, with_wif=True):
    w = pg[keepers] / pg[keepers].sum()
    est = float(np.sum(att[keepers] * w))
    inf = psi[:, keepers] @ w
    if with_wif:
        inf = inf + _wif(keepers, pg, g_unit, cell_group) @ att[keepers]
    return est, inf


def _se(inf: np.ndarray) -> float:
    se = float(np.sqrt(np.mean(inf**2) / len(inf)))
    return np.nan if se <= _TINY_SE else se


@dataclass(frozen=True)
class AggregatedATT:
    """An aggregate of ATT(g,t): the overall effect and its per-cohort, event-time or calendar table.

    Attributes
    ----------
    kind
        ``"simple"``, ``"group"``, ``"dynamic"`` or ``"calendar"``.
    estimate, std_error
        The overall effect and its analytic (influence-function) standard error.
    table
        One row per cohort (``group``), event time (``dynamic``; negative times are pre-treatment
        placebo effects) or period (``calendar``): ``att``, ``std_error``, ``lower``, ``upper``
        (pointwise at ``level``). Empty for ``simple``.
    """

    kind: str
    estimate: float
    std_error: float
    table: pd.DataFrame
    level: float
    influence: np.ndarray = field(repr=False)
    table_influence: np.ndarray = field(repr=False)

    def conf_int(self, level: float | None = None) -> tuple[float, float]:
        """Pointwise confidence interval of the overall effect."""
        z = stats.norm.ppf(0.5 + (self.level if level is None else level) / 2)
        return (self.estimate - z * self.std_error, self.estimate + z * self.std_error)

    def bootstrap(
        self,
        B: int = 999,
        *,
        seed=None,
        weights: Literal["mammen", "rademacher"] = "mammen",
        level: float | None = None,
    ) -> BootstrapBands:
        """Uniform bands over the rows of :attr:`table` by the multiplier bootstrap (seeded)."""
        if self.table_influence.shape[1] == 0:
            raise CausalCTSError("The simple aggregate has no table to band; use ATTgtResults.bootstrap instead.")
        bands = _bootstrap(
            self.table["att"].to_numpy(),
            self.table_influence,
            B,
            seed,
            weights,
            self.level if level is None else level,
            overall_psi=self.influence,
        )
        bands.table.index = self.table.index
        return bands

    def summary(self) -> str:
        lo, hi = self.conf_int()
        head = (
            f"ATT aggregate ({self.kind}): {self.estimate:.6g} (SE {self.std_error:.6g}), "
            f"{self.level:.0%} CI [{lo:.6g}, {hi:.6g}]"
        )
        return head if self.table.empty else head + "\n" + self.table.to_string(float_format=lambda v: f"{v:.6g}")

    def __str__(self) -> str:
        return self.summary()


@dataclass(frozen=True, eq=False)
class ATTgtResults(EstimationResults):
    """Group-time average treatment effects: the shared results contract plus ``att``, ``aggregate``, ``bootstrap``.

    ``params`` are labelled ``ATT(g,t)``; ``cov`` is the influence-function covariance; ``tests`` holds
    the Wald pre-test of parallel trends over the pre-treatment cells (R's did ``W``).
    """

    influence: np.ndarray | None = field(default=None, repr=False)
    """n x K unit influence functions, one column per cell (scaled as in R's did)."""
    cells: pd.DataFrame | None = field(default=None, repr=False)
    """cohort, time, base period and post flag of each cell, in ``params`` order."""
    unit_cohort: np.ndarray | None = field(default=None, repr=False)
    """Onset cohort of each unit (0 = never treated), aligned with the influence-function rows."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("influence", "unit_cohort"):
            arr = np.array(object.__getattribute__(self, name), dtype=float)
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "cells", object.__getattribute__(self, "cells").copy())

    @property
    def level(self) -> float:
        return float(self.spec["level"])

    @property
    def att(self) -> pd.DataFrame:
        """One row per (cohort, time): ``att``, ``std_error``, pointwise ``lower``/``upper`` at ``level``, ``post``."""
        ci = self.conf_int(self.level)
        c = self.cells
        assert c is not None  # required: __post_init__ copies it
        return pd.DataFrame(
            {
                "cohort": c["cohort"].to_numpy(),
                "time": c["time"].to_numpy(),
                "att": self.params.to_numpy(),
                "std_error": self.std_errors.to_numpy(),
                "lower": ci["lower"].to_numpy(),
                "upper": ci["upper"].to_numpy(),
                "post": c["post"].to_numpy(),
            },
            index=self.params.index,
        )

    def aggregate(self, kind: Literal["simple", "group", "dynamic", "calendar"] = "group") -> AggregatedATT:
        """Aggregate ATT(g,t) as R's ``aggte``: ``simple``, ``group`` (cohort), ``dynamic`` (event time), ``calendar``.

        Weights are cohort sizes; their estimation enters the standard errors. Cells whose ATT is
        missing are left out with a :class:`~causalcts.errors.DataWarning`.
        """
        check_option("kind", kind, ("simple", "group", "dynamic", "calendar"))
        att = self.params.to_numpy()
        psi, cells, g_unit = self.influence, self.cells, self.unit_cohort
        # __post_init__ makes arrays of both (np.array(None) included) and copies cells, so none is None here
        assert psi is not None and cells is not None and g_unit is not None
        cg = cells["cohort"].to_numpy(dtype=float)
        ct = cells["time"].to_numpy(dtype=float)
        ok = np.isfinite(att)
        if not ok.all():
            warnings.warn(
                f"Aggregation leaves out {int((~ok).sum())} cells with missing ATT: "
                f"{list(self.params.index[~ok][:5])}.",
                DataWarning,
                stacklevel=2,
            )
            att, psi, cg, ct = att[ok], psi[:, ok], cg[ok], ct[ok]
        glist = np.unique(cg)
        pgg = np.array([np.mean(g_unit == g) for g in glist])
        pg = pgg[np.searchsorted(glist, cg)]
        post = cg <= ct
        z = stats.norm.ppf(0.5 + self.level / 2)

        def table(keys, name, ests, infs):
            se = np.array([_se(i) for i in infs.T]) if infs.size else np.array([])
            return pd.DataFrame(
                {
                    name: keys,
                    "att": ests,
                    "std_error": se,
                    "lower": np.asarray(ests) - z * se,
                    "upper": np.asarray(ests) + z * se,
                }
            ).set_index(name)

        if kind == "simple":
            keep = np.flatnonzero(post)
            est, inf = _agg(att, psi, keep, pg, g_unit, cg)
            return AggregatedATT(kind, est, _se(inf), pd.DataFrame(), self.level, inf, np.empty((len(inf), 0)))
        if kind == "group":
            cohort_ests: list[float] = []
            cohort_infs: list[np.ndarray] = []
            for g in glist:
                which = np.flatnonzero((cg == g) & post)
                cohort_ests.append(float(np.mean(att[which])))
                cohort_infs.append(psi[:, which] @ (pg[which] / pg[which].sum()))
            infs = np.column_stack(cohort_infs)
            ests = np.asarray(cohort_ests)
            inf = infs @ (pgg / pgg.sum()) + _wif(np.arange(len(glist)), pgg, g_unit, glist) @ ests
            est = float(np.sum(ests * pgg) / pgg.sum())
            return AggregatedATT(kind, est, _se(inf), table(glist, "cohort", ests, infs), self.level, inf, infs)
        if kind == "dynamic":
            e_all = ct - cg
            eseq = np.unique(e_all)
            res = [_agg(att, psi, np.flatnonzero(e_all == e), pg, g_unit, cg) for e in eseq]
            ests = np.array([r[0] for r in res])
            infs = np.column_stack([r[1] for r in res])
            pos = eseq >= 0
            inf = infs[:, pos].mean(axis=1)
            return AggregatedATT(
                kind, float(ests[pos].mean()), _se(inf), table(eseq, "event_time", ests, infs), self.level, inf, infs
            )
        tlist = np.array([t for t in np.unique(ct) if t >= glist.min() and np.any((ct == t) & post)])
        res = [_agg(att, psi, np.flatnonzero((ct == t) & post), pg, g_unit, cg) for t in tlist]
        ests = np.array([r[0] for r in res])
        infs = np.column_stack([r[1] for r in res])
        inf = infs.mean(axis=1)
        return AggregatedATT(
            kind, float(ests.mean()), _se(inf), table(tlist, "time", ests, infs), self.level, inf, infs
        )

    def bootstrap(
        self,
        B: int = 999,
        *,
        seed=None,
        weights: Literal["mammen", "rademacher"] = "mammen",
        level: float | None = None,
    ) -> BootstrapBands:
        """Multiplier-bootstrap standard errors and a uniform confidence band over all ATT(g,t).

        Draws i.i.d. multipliers per unit (Mammen's two-point weights, as R's did, or Rademacher) and
        takes the sup-t critical value over cells. The same ``seed`` gives bit-identical output.
        """
        bands = _bootstrap(
            self.params.to_numpy(), self.influence, B, seed, weights, self.level if level is None else level
        )
        bands.table.index = self.params.index
        return bands


# ---------------------------------------------------------------------------------------- public
def att_gt(
    data: pd.DataFrame,
    *,
    outcome: str,
    entity: str,
    time: str,
    cohort: str,
    control: Literal["never", "notyet"] = "never",
    covariates: list[str] | None = None,
    est: Literal["dr", "ipw", "reg"] = "dr",
    anticipation: int = 0,
    base_period: Literal["varying", "universal"] = "varying",
    level: float = 0.95,
) -> ATTgtResults:
    """Callaway and Sant'Anna (2021) group-time average treatment effects with analytic standard errors.

    Parameters
    ----------
    data
        A balanced panel (teams observed in every period; others are dropped with a
        :class:`~causalcts.errors.DataWarning`). Never modified.
    outcome, entity, time
        Outcome, team and (whole-number) period columns.
    cohort
        Onset cohort of each team: the first treated period, 0 (or NaN) for never treated; constant
        within a team. :func:`causalcts.did.cohorts.onset_cohort` builds it from an adoption share.
    control
        ``"never"``: never-treated teams are the comparison group; ``"notyet"``: never-treated teams
        and teams not yet treated by period t (+ anticipation).
    covariates
        Numeric columns to condition on; the values of the earlier of the two periods of each cell are
        used (R's did convention).
    est
        ``"dr"`` doubly robust (default), ``"ipw"`` inverse probability weighting, ``"reg"`` outcome
        regression. Without covariates all three coincide.
    anticipation
        Periods before onset in which teams may already react.
    base_period
        ``"varying"``: pre-treatment cells compare t with t - 1; ``"universal"``: every cell compares
        with g - 1 - anticipation (that cell is 0 by construction).
    level
        Confidence level of the intervals in :attr:`ATTgtResults.att` and the aggregates.

    Returns
    -------
    ATTgtResults
        Immutable; ``params`` labelled ``ATT(g,t)``.

    Raises
    ------
    causalcts.errors.NoControlGroupError
        ``control="never"`` and no team is never treated.
    causalcts.errors.CohortNotConstantError
        The cohort column changes within a team.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from causalcts.did.att_gt import att_gt
    >>> rng = np.random.default_rng(0)
    >>> teams = pd.DataFrame({"team": range(60), "g": np.repeat([0, 3, 4], 20)})
    >>> df = teams.merge(pd.DataFrame({"week": range(1, 6)}), how="cross")
    >>> df["y"] = 0.1 * df["week"] + 1.0 * ((df["g"] > 0) & (df["week"] >= df["g"])) + rng.normal(0, 0.1, len(df))
    >>> res = att_gt(df, outcome="y", entity="team", time="week", cohort="g")
    >>> round(float(res.att.loc["ATT(3,3)", "att"]), 1)
    1.0
    >>> round(res.aggregate("dynamic").estimate, 1)
    1.0
    """
    check_option("control", control, ("never", "notyet"))
    check_option("est", est, ("dr", "ipw", "reg"))
    check_option("base_period", base_period, ("varying", "universal"))
    if not (isinstance(anticipation, (int, np.integer)) and anticipation >= 0):
        raise CausalCTSError(f"anticipation={anticipation!r} must be a whole number of periods, 0 or more.")
    if not 0 < level < 1:
        raise CausalCTSError(f"level={level} must lie strictly between 0 and 1 (e.g. 0.95).")
    covariates = list(covariates or [])
    design = _prepare(data, outcome, entity, time, cohort, covariates, control, anticipation)
    att, psi, cells = _cells(design, est, control, anticipation, base_period)
    n = psi.shape[0]
    labels = [f"ATT({g:g},{t:g})" for g, t in zip(cells["cohort"], cells["time"])]
    cov = psi.T @ psi / n**2
    se = np.sqrt(np.diag(cov))
    se = np.where(se <= _TINY_SE, np.nan, se)
    tests = {}
    pre = np.flatnonzero((~cells["post"].to_numpy()) & np.isfinite(se))
    if len(pre):
        vpre = cov[np.ix_(pre, pre)]
        if np.isfinite(vpre).all() and 1 / np.linalg.cond(vpre) > np.finfo(float).eps:
            w = float(att[pre] @ np.linalg.solve(vpre, att[pre]))
            tests["pretrend_wald"] = {"statistic": w, "df": len(pre), "pvalue": float(stats.chi2.sf(w, len(pre)))}
    spec = {
        "outcome": outcome,
        "entity": entity,
        "time": time,
        "cohort": cohort,
        "control": control,
        "covariates": tuple(covariates),
        "est": est,
        "anticipation": int(anticipation),
        "base_period": base_period,
        "level": float(level),
    }
    return ATTgtResults(
        params=pd.Series(att, index=labels),
        std_errors=pd.Series(se, index=labels),
        cov=pd.DataFrame(cov, index=labels, columns=labels),
        nobs=int(design.y.size),
        n_entities=n,
        method=f"Callaway-Sant'Anna ATT(g,t) ({est}, control={control})",
        formula=f"{outcome} ~ ATT(g,t) | cohort={cohort}" + (f", covariates={covariates}" if covariates else ""),
        cov_type="influence function (analytic)",
        tests=MappingProxyType(tests),
        spec=MappingProxyType(spec),
        info=MappingProxyType(
            {"periods": tuple(float(p) for p in design.periods), "cohorts": tuple(float(g) for g in design.groups)}
            | ({} if design.period_dates is None else {"period_dates": design.period_dates})
        ),
        influence=psi,
        cells=cells,
        unit_cohort=design.cohort,
    )
