r"""de Chaisemartin and D'Haultfoeuille (2024) event-study estimators for a non-binary, switching treatment.

The treatment :math:`D_{g,t}` of group :math:`g` (a team) may be non-binary (an adoption share) and may
move up or down several times. With :math:`D_{g,1}` the group's first observed treatment, let
:math:`F_g` be the first period at which :math:`D_{g,t} \neq D_{g,1}` (:math:`F_g = \infty` for groups
that never switch), :math:`S_g = \operatorname{sign}(D_{g,F_g} - D_{g,1})`, and :math:`T_d` the last period
at which some group with baseline treatment :math:`d` has not switched yet. For
:math:`F_g - 1 + \ell \le T_{D_{g,1}}` the paper's (equation 3) group-level estimator compares the outcome
change of switcher :math:`g` since its last period before the switch with the change of the groups
:math:`g'` that had the same baseline treatment and have not switched by :math:`F_g - 1 + \ell`:

.. math::

    DID_{g,\ell} = Y_{g,F_g-1+\ell} - Y_{g,F_g-1}
        - \frac{1}{N^g_{F_g-1+\ell}} \sum_{g': D_{g',1}=D_{g,1},\, F_{g'} > F_g-1+\ell}
          \left(Y_{g',F_g-1+\ell} - Y_{g',F_g-1}\right),
    \qquad
    DID_\ell = \frac{1}{N_\ell} \sum_{g:\, F_g-1+\ell \le T_{D_{g,1}}} S_g\, DID_{g,\ell}.

``Effect_l`` is :math:`DID_\ell`, the average effect of having been exposed to a weakly higher (or, for
switchers out, lower) treatment for :math:`\ell` periods. ``Placebo_l`` applies the same comparison
:math:`\ell` periods *before* the switch, :math:`Y_{g,F_g-1-\ell} - Y_{g,F_g-1}`, with the controls of
``Effect_l`` (the packages' convention), so it is zero in expectation under parallel trends and no
anticipation. Groups whose treatment goes both above and below its baseline are dropped, as the
reference packages do by default (their :math:`DID_{g,\ell}` has no sign-definite interpretation).

The normalized effect (``info["normalized"]``) divides :math:`DID_\ell` by the average incremental dose
:math:`\delta^D_\ell = N_\ell^{-1}\sum_g S_g \sum_{k=0}^{\ell-1}(D_{g,F_g+k} - D_{g,1})`.

Variance (paper, Section 3 and Web Appendix): conditional on the treatments every estimator is linear in
the outcomes, :math:`DID_\ell = N_\ell^{-1}\sum_g U_{g,\ell}` with
:math:`U_{g,\ell} = \sum_t \lambda_{g,t,\ell}\,(Y_{g,t} - Y_{g,t-\ell})`, where :math:`\lambda = S_g` at the
switcher's own period :math:`t = F_g - 1 + \ell` and :math:`\lambda = -\sum_{s \in \text{cell}} S_s / N^c`
when :math:`g` is one of the :math:`N^c` controls of the switchers of cell :math:`(D_{g,1}, t)`. With
independent groups (clusters), :math:`V(DID_\ell \mid D) = N_\ell^{-2}\sum_c V(\sum_{g \in c} U_{g,\ell})`.
The expectation of each long difference is unknown (each group may have its own), so it is replaced by the
mean over its cohort, with the degrees-of-freedom factor :math:`\sqrt{n/(n-1)}` that makes the squared
residual unbiased when the cohort shares one expectation; otherwise the estimator is conservative. Cohorts:
switchers with the same :math:`(D_{g,1}, F_g, D_{g,F_g})`; not-yet switchers at :math:`t` with the same
:math:`D_{g,1}`; a singleton falls back to the union of both at :math:`(D_{g,1}, t)`.

References
----------
de Chaisemartin, C. and D'Haultfoeuille, X. (2024). Difference-in-differences estimators of intertemporal
treatment effects. Review of Economics and Statistics 106(6), 1723-1736.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy import stats

from causalcts.data.panel import numeric_column
from causalcts.errors import (
    DataWarning,
    DuplicateKeyError,
    EmptyPanelError,
    MissingColumnError,
    MissingValueError,
    NoTreatmentVariationError,
    SpecificationError,
    TooFewPeriodsError,
    describe_rows,
)
from causalcts.results.base import EstimationResults

__all__ = ["did_multiplegt_dyn"]


@dataclass(frozen=True)
class _Wide:
    y: np.ndarray  # G x T outcomes, NaN where missing
    d: np.ndarray  # G x T treatments, NaN where missing
    cluster: np.ndarray  # G cluster codes
    groups: pd.Index
    periods: np.ndarray


_numeric = numeric_column  # one implementation, in the data layer


def _prepare(data, outcome, entity, time, treatment, cluster) -> _Wide:
    if not isinstance(data, pd.DataFrame):
        raise MissingColumnError(f"did_multiplegt_dyn needs a pandas DataFrame, not {type(data).__name__}.")
    needed = list(dict.fromkeys([outcome, entity, time, treatment] + ([cluster] if cluster else [])))
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise MissingColumnError(f"Column(s) {missing} not in the data; columns are {list(data.columns)}.")
    if data.shape[0] == 0:
        raise EmptyPanelError("The data has no rows.")
    frame = data[needed].copy()
    for col, what in [(entity, "group (entity)"), (time, "time"), (treatment, "treatment")] + (
        [(cluster, "cluster")] if cluster else []
    ):
        na = frame[col].isna()
        if na.any():
            raise MissingValueError(f"The {what} column {col!r} is missing in {describe_rows(frame.index[na])}.")
    frame[time] = _numeric(frame, time)
    frame[treatment] = _numeric(frame, treatment)
    frame[outcome] = _numeric(frame, outcome)
    if not np.isfinite(frame[treatment]).all():
        bad = ~np.isfinite(frame[treatment])
        raise MissingValueError(f"The treatment column {treatment!r} is infinite in {describe_rows(frame.index[bad])}.")
    dup = frame.duplicated([entity, time], keep=False)
    if dup.any():
        raise DuplicateKeyError(
            f"{int(dup.sum())} rows share an ({entity}, {time}) pair: {describe_rows(frame.index[dup])}."
        )
    if cluster:
        nclus = frame.groupby(entity)[cluster].nunique()
        if (nclus > 1).any():
            raise SpecificationError(
                f"cluster={cluster!r} changes within {int((nclus > 1).sum())} {entity} value(s), e.g. "
                f"{list(nclus.index[nclus > 1][:3])}; groups must be nested in clusters."
            )
    bad_y = ~np.isfinite(frame[outcome])
    if bad_y.any():  # the packages keep the treatment of such rows; an unobserved outcome just drops its differences
        frame.loc[bad_y, outcome] = np.nan
    periods = np.sort(frame[time].unique())
    if len(periods) < 2:
        raise TooFewPeriodsError(f"The time column {time!r} has {len(periods)} period(s); at least 2 are needed.")
    if frame[treatment].nunique() < 2:
        raise NoTreatmentVariationError(
            f"The treatment {treatment!r} never varies (always {frame[treatment].iloc[0]:g}); no group switches."
        )
    groups = pd.Index(pd.unique(frame[entity])).sort_values()
    gi = groups.get_indexer(frame[entity])
    ti = np.searchsorted(periods, frame[time].to_numpy())
    y = np.full((len(groups), len(periods)), np.nan)
    d = np.full_like(y, np.nan)
    y[gi, ti] = frame[outcome].to_numpy()
    d[gi, ti] = frame[treatment].to_numpy()
    if cluster:
        first = frame.groupby(entity, sort=True)[cluster].first().reindex(groups)
        codes = pd.factorize(first)[0]
    else:
        codes = np.arange(len(groups))
    return _Wide(y=y, d=d, cluster=codes, groups=groups, periods=periods)


@dataclass(frozen=True)
class _Design:
    d1: np.ndarray  # baseline treatment
    first: np.ndarray  # index of the first observed period
    F: np.ndarray  # first switch (period index), inf if never
    S: np.ndarray  # +1 / -1 / 0 (never switches)
    T_last: np.ndarray  # per group: last period index at which a same-baseline group has not switched
    keep: np.ndarray  # groups used


def _design(w: _Wide) -> _Design:
    G, T = w.d.shape
    obs = np.isfinite(w.d)
    first = np.argmax(obs, axis=1)
    d1 = w.d[np.arange(G), first]
    tidx = np.arange(T)
    changed = obs & (w.d != d1[:, None]) & (tidx[None, :] > first[:, None])
    F = np.where(changed.any(axis=1), np.argmax(changed, axis=1), np.inf).astype(float)
    fidx = np.where(np.isfinite(F), F, 0).astype(int)
    S = np.where(np.isfinite(F), np.sign(w.d[np.arange(G), fidx] - d1), 0.0)
    above = np.nanmax(np.where(obs, w.d - d1[:, None], -np.inf), axis=1) > 0
    below = np.nanmin(np.where(obs, w.d - d1[:, None], np.inf), axis=1) < 0
    keep = ~(above & below)
    # last period at which some kept group with the same baseline has not switched yet
    T_last = np.full(G, -1.0)
    last_obs = T - 1 - np.argmax(obs[:, ::-1], axis=1)
    for dv in np.unique(d1[keep]):
        m = keep & (d1 == dv)
        T_last[m] = np.max(np.minimum(F[m] - 1, last_obs[m]))
    return _Design(d1=d1, first=first, F=F, S=S, T_last=T_last, keep=keep)


@dataclass(frozen=True)
class _Estimate:
    estimate: float
    n_switchers: int
    n_cells: int
    U: np.ndarray  # G contributions, sum(U) / n_switchers = estimate (before demeaning)
    U_dm: np.ndarray  # G demeaned, DOF-adjusted contributions for the variance
    switchers: np.ndarray  # bool G: groups that enter as switchers


def _cell_mean(values: np.ndarray, keys: np.ndarray, clusters: np.ndarray, by_clusters: bool):
    """Per row: the mean of ``values`` over rows with the same key, and the size of that cohort."""
    if len(values) == 0:
        return np.zeros(0), np.zeros(0)
    codes, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    sums = np.bincount(inv, weights=values)
    counts = np.bincount(inv).astype(float)
    if by_clusters:
        pairs = np.unique(np.column_stack([inv, clusters]), axis=0)
        size = np.bincount(pairs[:, 0], minlength=len(codes)).astype(float)
    else:
        size = counts
    return (sums / counts)[inv], size[inv]


def _estimate(w: _Wide, des: _Design, ell: int, placebo: bool, dof_clusters: bool) -> _Estimate | None:
    G, T = w.y.shape
    gidx = np.arange(G)
    sw = des.keep & np.isfinite(des.F) & (des.F - 1 + ell <= des.T_last)
    F = np.where(sw, des.F, 0).astype(int)
    t_sw = F - 1 + ell  # the switcher's period
    base = F - 1
    if placebo:
        sw &= F - 1 - ell >= des.first
        other = np.clip(F - 1 - ell, 0, T - 1)
    else:
        other = np.clip(t_sw, 0, T - 1)
    sw &= (t_sw < T) & (base >= 0)
    if placebo:  # the switchers of Placebo_l are those of Effect_l that are observed l periods before F_g - 1
        sw &= np.isfinite(w.y[gidx, np.clip(t_sw, 0, T - 1)])
    dy_sw = np.where(sw, w.y[gidx, other] - w.y[gidx, np.clip(base, 0, T - 1)], np.nan)
    sw &= np.isfinite(dy_sw)
    # the long difference of every (group, period t), as it enters for the cell of period t
    lag = ell
    tt = np.arange(T)
    if placebo:  # controls at t contribute Y[t - 2l] - Y[t - l]
        a = np.full((G, T), np.nan)
        b = np.full((G, T), np.nan)
        a[:, 2 * ell :] = w.y[:, : T - 2 * ell] if 2 * ell < T else a[:, 2 * ell :]
        b[:, lag:] = w.y[:, : T - lag]
        dy = a - b
        dy_eff = np.full((G, T), np.nan)
        dy_eff[:, lag:] = w.y[:, lag:] - w.y[:, : T - lag]
        dy = np.where(np.isfinite(dy_eff), dy, np.nan)  # placebo controls must be controls of Effect_l too
    else:
        dy = np.full((G, T), np.nan)
        dy[:, lag:] = w.y[:, lag:] - w.y[:, : T - lag]
    ctrl = des.keep[:, None] & (des.F[:, None] > tt[None, :]) & np.isfinite(dy)
    # switcher cells (baseline d, period t): sum of signs and number of controls
    lam = np.zeros((G, T))
    n_cells = 0
    sw_idx = np.flatnonzero(sw)
    d_keys = np.unique(des.d1[sw_idx])
    for dv in d_keys:
        ms = sw_idx[des.d1[sw_idx] == dv]
        for t in np.unique(t_sw[ms]):
            cell = ms[t_sw[ms] == t]
            controls = np.flatnonzero(ctrl[:, t] & (des.d1 == dv))
            if len(controls) == 0:
                sw[cell] = False
                continue
            lam[cell, t] += des.S[cell]
            lam[controls, t] -= des.S[cell].sum() / len(controls)
            n_cells += len(cell) + len(controls)
    n_sw = int(sw.sum())
    if n_sw == 0:
        return None
    # The switcher's own difference sits at column t_sw in a matrix aligned like dy.
    dy_all = dy.copy()
    dy_all[sw, t_sw[sw]] = dy_sw[sw]
    active = lam != 0
    U = np.where(active, lam * np.nan_to_num(dy_all), 0.0).sum(axis=1)
    estimate = float(U.sum() / n_sw)
    # ---- variance: demean every long difference within its cohort (paper's conservative estimator)
    gg, tc = np.nonzero(active)
    is_sw = sw[gg] & (tc == t_sw[gg])
    vals = dy_all[gg, tc]
    clus = w.cluster[gg]
    d_at_f = w.d[gg, np.clip(F[gg], 0, T - 1)]
    key_s = np.column_stack([np.zeros(len(gg)), des.d1[gg], F[gg], d_at_f, tc])  # switcher cohort
    key_ns = np.column_stack([np.ones(len(gg)), des.d1[gg], np.zeros(len(gg)), np.zeros(len(gg)), tc])
    key = np.where(is_sw[:, None], key_s, key_ns)
    mean, n = _cell_mean(vals, key, clus, dof_clusters)
    key_u = np.column_stack([des.d1[gg], tc])  # union of switchers and not-yet switchers at (d, t)
    mean_u, n_u = _cell_mean(vals, key_u, clus, dof_clusters)
    single = n < 2
    mean = np.where(single, mean_u, mean)
    n = np.where(single, n_u, n)
    dof = np.where(n >= 2, np.sqrt(n / np.maximum(n - 1, 1)), 1.0)
    resid = np.where(n >= 2, (vals - mean) * dof, 0.0)
    U_dm = np.bincount(gg, weights=lam[gg, tc] * resid, minlength=G)
    return _Estimate(estimate, n_sw, n_cells, U, U_dm, sw)


def _dose(w: _Wide, des: _Design, est: _Estimate, ell: int) -> tuple[float, float]:
    """Summed incremental dose at horizon ``ell`` and the summed cumulative dose of its switchers."""
    G, T = w.d.shape
    g = np.flatnonzero(est.switchers)
    F = des.F[g].astype(int)
    inc = des.S[g] * (w.d[g, np.clip(F - 1 + ell, 0, T - 1)] - des.d1[g])
    cum = sum(des.S[g] * (w.d[g, np.clip(F + k, 0, T - 1)] - des.d1[g]) for k in range(ell))
    return float(np.nansum(inc)), float(np.nansum(cum))


def did_multiplegt_dyn(
    data: pd.DataFrame,
    *,
    outcome: str,
    entity: str,
    time: str,
    treatment: str,
    effects: int = 1,
    placebo: int = 0,
    cluster: str | None = None,
    level: float = 0.95,
) -> EstimationResults:
    r"""Event-study DID estimators of de Chaisemartin and D'Haultfoeuille (2024) for a switching treatment.

    Parameters
    ----------
    data : pandas.DataFrame
        Long panel, one row per (entity, time). The outcome may be missing in some rows (its differences
        are then not used); the entity, time and treatment may not.
    outcome, entity, time, treatment : str
        Column names. ``treatment`` may be binary, discrete or continuous (an adoption share) and may
        increase or decrease several times; groups are compared only with groups that had the same
        first-period treatment.
    effects : int
        Number of dynamic effects :math:`\ell = 1, \dots, L` (``Effect_1`` ... ``Effect_L``).
    placebo : int
        Number of placebos (``Placebo_1`` ...), each using the controls of the effect with the same index.
    cluster : str, optional
        Column to cluster on (groups must be nested in it). Default: the group (``entity``) itself.
    level : float
        Confidence level stored in ``spec`` (``conf_int`` takes its own).

    Returns
    -------
    EstimationResults
        ``params`` ``Effect_l``, then ``Placebo_l``, then ``Avg_Total_Effect`` (the sum of the effects over
        the sum of the incremental doses, paper Section 4); analytic ``std_errors`` and ``cov`` from the
        influence functions; ``tests["placebo_joint"]`` (Wald test that all placebos are zero, when there
        are placebos); ``info["n_switchers"]`` (switchers per parameter), ``info["normalized"]`` (the
        normalized effects :math:`DID^n_\ell` with their standard errors) and ``info["dropped_groups"]``.

    Raises
    ------
    NoTreatmentVariationError
        The treatment never varies, or no group switches.
    MissingValueError
        The entity (group), time, treatment or cluster column has missing values.
    TooFewPeriodsError
        ``effects`` or ``placebo`` asks for a horizon that no switcher reaches with a valid control group.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from causalcts.did import did_multiplegt_dyn
    >>> rng = np.random.default_rng(1)
    >>> G, T = 300, 8
    >>> onset = rng.choice([3, 5, 99], size=G)            # two adoption waves and never-adopters
    >>> share = rng.uniform(0.2, 1.0, size=G)              # the adoption share reached at onset
    >>> df = pd.DataFrame([(g, t) for g in range(G) for t in range(T)], columns=["team", "week"])
    >>> df["ai_share"] = np.where(df["week"] >= onset[df["team"]], share[df["team"]], 0.0)
    >>> df["y"] = 0.1 * df["week"] + 2.0 * df["ai_share"] + rng.normal(0, 0.1, len(df))
    >>> res = did_multiplegt_dyn(df, outcome="y", entity="team", time="week", treatment="ai_share",
    ...                          effects=2, placebo=1)
    >>> round(float(res.info["normalized"]["Effect_1"]["estimate"]), 1)   # 2.0 per unit of share
    2.0
    >>> res.info["n_switchers"]["Effect_1"] > 0
    True
    """
    for name, v, lo in [("effects", effects, 1), ("placebo", placebo, 0)]:
        if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= lo):
            raise SpecificationError(f"{name}={v!r} must be a whole number, {lo} or more.")
    if not 0 < level < 1:
        raise SpecificationError(f"level={level} must lie strictly between 0 and 1 (e.g. 0.95).")
    w = _prepare(data, outcome, entity, time, treatment, cluster)
    des = _design(w)
    if not np.isfinite(des.F[des.keep]).any():
        raise NoTreatmentVariationError(
            f"No group's treatment {treatment!r} ever changes from its first-period value; there are no switchers."
        )
    n_dropped = int((~des.keep).sum())
    if n_dropped:
        warnings.warn(
            f"Dropped {n_dropped} of {len(des.keep)} groups whose {treatment!r} goes both above and below its "
            "first-period value (their DID_g,l has no sign-definite interpretation).",
            DataWarning,
            stacklevel=2,
        )
    dof_clusters = cluster is not None
    names: list[str] = []
    ests: list[_Estimate] = []
    for kind, count in [("Effect", effects), ("Placebo", placebo)]:
        for ell in range(1, count + 1):
            e = _estimate(w, des, ell, kind == "Placebo", dof_clusters)
            if e is None:
                option = "effects" if kind == "Effect" else "placebo"
                raise TooFewPeriodsError(
                    f"{option}={count} is larger than the data allow: no switcher has a valid "
                    f"{kind}_{ell} (a not-yet-switched group with the same baseline {treatment!r} and observed "
                    f"{outcome!r} {ell} periods {'before' if kind == 'Placebo' else 'after'} its last period before "
                    f"the switch); the largest feasible is {ell - 1}."
                )
            names.append(f"{kind}_{ell}")
            ests.append(e)
    # average total effect: sum of all effects over the sum of incremental doses (the denominator is fixed given D)
    eff = [e for n, e in zip(names, ests) if n.startswith("Effect")]
    doses = [_dose(w, des, e, ell) for ell, e in enumerate(eff, start=1)]
    den = sum(dz[0] for dz in doses)
    ate_U = np.sum([e.U for e in eff], axis=0) / den
    ate_Udm = np.sum([e.U_dm for e in eff], axis=0) / den
    names.append("Avg_Total_Effect")
    params = np.asarray([e.estimate for e in ests] + [float(ate_U.sum())], dtype=float)
    # influence: (G x K) demeaned contributions scaled by 1 / N_l, summed within clusters
    infl = np.column_stack([e.U_dm / e.n_switchers for e in ests] + [ate_Udm])
    n_clusters = int(w.cluster.max()) + 1
    csum = np.zeros((n_clusters, infl.shape[1]))
    np.add.at(csum, w.cluster, infl)
    V = csum.T @ csum
    se = np.sqrt(np.diag(V))
    tests: dict[str, dict[str, float]] = {}
    pl_idx = [i for i, n in enumerate(names) if n.startswith("Placebo")]
    if pl_idx:
        b = params[pl_idx]
        Vp = V[np.ix_(pl_idx, pl_idx)]
        stat = float(b @ np.linalg.pinv(Vp) @ b)
        tests["placebo_joint"] = {
            "statistic": stat,
            "df": len(pl_idx),
            "pvalue": float(stats.chi2.sf(stat, len(pl_idx))),
        }
    normalized = {}
    for ell, (e, dz) in enumerate(zip(eff, doses), start=1):
        avg_dose = dz[1] / e.n_switchers
        normalized[f"Effect_{ell}"] = {
            "estimate": e.estimate / avg_dose,
            "std_error": float(se[ell - 1] / abs(avg_dose)),
            "avg_cumulative_dose": avg_dose,
        }
    n_switchers = {n: e.n_switchers for n, e in zip(names, ests)}
    n_switchers["Avg_Total_Effect"] = int(sum(e.n_switchers for e in eff))
    spec = {
        "outcome": outcome,
        "entity": entity,
        "time": time,
        "treatment": treatment,
        "effects": int(effects),
        "placebo": int(placebo),
        "cluster": cluster,
        "level": float(level),
    }
    info = {
        "n_switchers": n_switchers,
        "n_cells": {n: e.n_cells for n, e in zip(names, ests)},
        "normalized": normalized,
        "dropped_groups": n_dropped,
        "n_clusters": n_clusters,
        "periods": [float(p) for p in w.periods],
    }
    return EstimationResults(
        params=pd.Series(params, index=names),
        std_errors=pd.Series(se, index=names),
        cov=pd.DataFrame(V, index=names, columns=names),
        nobs=int(np.isfinite(w.y).sum()),
        n_entities=int(des.keep.sum()),
        method="de Chaisemartin-D'Haultfoeuille DID_l (did_multiplegt_dyn)",
        formula=f"{outcome} ~ DID_l({treatment}) | {entity} + {time}",
        cov_type=f"influence function, cohort-demeaned, clustered by {cluster or entity}",
        tests=MappingProxyType(tests),
        info=MappingProxyType(info),
        spec=MappingProxyType(spec),
    )
