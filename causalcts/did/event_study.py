r"""Event studies for rollouts: binary onsets (TWFE or Sun and Abraham) and continuous adoption shares.

Binary onset, ``method="twfe"`` (fixest's ``feols(y ~ i(rel_time, ref = -1) | entity + time)``):

.. math::

    y_{it} = \alpha_i + \lambda_t + \sum_{e \ne \text{ref}} \beta_e \, 1\{t - G_i = e\} + u_{it},

where :math:`G_i` is team :math:`i`'s onset period; never-treated teams have every dummy at zero and
serve as controls. With ``leads=L`` and ``lags=M`` the end points are **binned**: :math:`e = -L`
collects every event time :math:`\le -L` and :math:`e = M` every event time :math:`\ge M`
(Schmidheiny and Siegloch 2023); by default no event time is binned.

``method="sun-abraham"`` (Sun and Abraham 2021, the interaction-weighted estimator of fixest's
``sunab()``) fits one coefficient :math:`\delta_{c,e}` per onset cohort :math:`c` and event time
:math:`e \ne \text{ref}` against a clean control group (never-treated teams, or the last-treated
cohort with every period from its onset on dropped), then averages over cohorts with their shares of
the estimation sample at each event time, :math:`\hat\beta_e = \sum_c w_{c,e}\hat\delta_{c,e}`,
:math:`w_{c,e} = n_{c,e} / \sum_{c'} n_{c',e}`; the covariance is :math:`W \hat V_\delta W'` with the
weights treated as fixed, as fixest's ``aggregate()`` does.

Continuous share (``share=``): distributed leads and lags in a TWFE regression (fixest's
``feols(y ~ l(share, -L:M) | entity + time)``),
:math:`y_{it} = \alpha_i + \lambda_t + \sum_{k=-L}^{M} \beta_k \, s_{i,t-k} + u_{it}`, with the leads
:math:`k < 0` as the placebo terms.

Standard errors are CRV1 with fixest's small-sample correction (:func:`causalcts.inference.crv1`);
intervals and tests use t(G - 1).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from causalcts.data.panel import Panel, _as_dates, check_full_rank, lag_name
from causalcts.did._within import group_demean, two_way_demean
from causalcts.errors import (
    CohortNotConstantError,
    CollinearityError,
    DataWarning,
    MissingColumnError,
    MissingValueError,
    NoControlGroupError,
    NoTreatmentVariationError,
    SpecificationError,
    TreatmentError,
    check_option,
)
from causalcts.inference.cluster import cluster_codes, crv1, is_nested
from causalcts.inference.wild import wild_cluster_bootstrap
from causalcts.results.base import EstimationResults

__all__ = ["event_study", "event_time_name"]


def event_time_name(e: int) -> str:
    """Label of the event-time coefficient ``e``: ``"e-2"``, ``"e0"``, ``"e3"``.

    Examples
    --------
    >>> from causalcts.did import event_time_name
    >>> [event_time_name(e) for e in (-2, 0, 3)]
    ['e-2', 'e0', 'e3']
    """
    return f"e{int(e)}"


# ---------------------------------------------------------------------------------------------- onsets
def _where(frame: pd.DataFrame, mask: np.ndarray, entity: str, time: str, limit: int = 5) -> str:
    """The (entity, time) pairs of flagged rows, for messages (the panel is re-sorted: row labels would mislead)."""
    pairs = frame.loc[mask, [entity, time]].head(limit).itertuples(index=False)
    shown = ", ".join(f"({_plain(e)!r}, {_plain(t)!r})" for e, t in pairs)
    more = int(mask.sum()) - limit
    return f"({entity}, {time}) = {shown}" + (f" and {more} more" if more > 0 else "")


def _plain(v):
    if isinstance(v, pd.Timestamp) and v is not pd.NaT:
        return str(v.date()) if v == v.normalize() else v.isoformat()
    return v.item() if isinstance(v, np.generic) else v


def _date_periods(panel: Panel, dates: pd.Series, t0) -> np.ndarray:
    """Dates as periods since ``t0`` on the panel's calendar (weeks, months, quarters, years); NaT stays NaN."""
    dates = pd.Series(pd.to_datetime(dates)).reset_index(drop=True)
    out = np.full(len(dates), np.nan)
    ok = dates.notna().to_numpy()
    if ok.any():
        base = float(panel.period_of(pd.Series([t0]))[0])
        out[ok] = panel.period_of(dates[ok]).astype(float) - base
    return out


def _time_number(values: pd.Series, t0, panel: Panel, what: str) -> np.ndarray:
    """Times as numbers of periods (dates: periods of the panel's calendar since ``t0``); NaN stays NaN."""
    if t0 is not None:
        out = _date_periods(panel, values, t0)
    else:
        out = pd.to_numeric(values).to_numpy(dtype=float)
    ok = np.isfinite(out)
    if np.any(out[ok] != np.round(out[ok])):
        raise TreatmentError(f"The {what} must fall on whole periods of the time column; some values fall between.")
    return out


def _onset_from_treatment(frame: pd.DataFrame, entity: str, time: str, treatment: str, t_num: np.ndarray) -> np.ndarray:
    """Per-row onset (the team's first period with treatment 1; NaN if never) of a 0/1 absorbing treatment."""
    d = frame[treatment].to_numpy(dtype=float)
    bad = ~np.isin(d, (0.0, 1.0))
    if bad.any():
        raise TreatmentError(
            f"The treatment {treatment!r} must be 0/1 (use share= for a continuous exposure or onset= for onset "
            f"periods); rows at {_where(frame, bad, entity, time)} hold {sorted(set(d[bad].tolist()))[:3]}."
        )
    if np.ptp(d) == 0:
        raise NoTreatmentVariationError(
            f"The treatment {treatment!r} is {int(d[0])} in every row: it never varies, so no effect is identified."
        )
    ent = frame[entity].to_numpy()
    switches_off = (pd.Series(d).groupby(ent, sort=False).diff() < 0).to_numpy()
    if switches_off.any():
        teams = pd.unique(ent[switches_off])
        raise TreatmentError(
            f"The treatment {treatment!r} is not absorbing: it switches from 1 back to 0 for {entity} "
            f"{[_plain(t) for t in teams[:5]]}{' and more' if len(teams) > 5 else ''} (back to 0 at "
            f"{_where(frame, switches_off, entity, time)}). "
            "An event study needs one onset per team; pass onset= with each team's first treated period instead."
        )
    return pd.Series(np.where(d == 1, t_num, np.nan)).groupby(ent, sort=False).transform("min").to_numpy()


_NEVER_HINT = (
    "If 0 (or another code) marks never-treated teams, pass never=0 (that code) or code them as NaN "
    "(NaT for dates, as onset_cohort does)."
)


def _onset_from_column(frame: pd.DataFrame, entity: str, time: str, onset: str, never, t0, panel: Panel) -> np.ndarray:
    """Per-row onset in periods from a column of onset times; NaN, NaT, inf or ``never`` mean never treated."""
    raw = frame[onset]
    marked = raw.isna() | (raw == never if never is not None else False)
    if t0 is None:
        if pd.api.types.is_datetime64_any_dtype(raw):
            raise TreatmentError(
                f"The onset column {onset!r} holds dates, but the time column {time!r} holds numbers: give onsets "
                "in the same units as the time column."
            )
        num = pd.to_numeric(raw.where(~marked), errors="coerce")
        bad = num.isna() & ~marked
        if bad.any():
            raise TreatmentError(
                f"The onset column {onset!r} must hold periods of the time column; rows at "
                f"{_where(frame, bad.to_numpy(), entity, time)} hold {list(pd.unique(raw[bad]))[:3]}."
            )
        out = np.array(num.to_numpy(dtype=float), copy=True)
        out[~np.isfinite(out)] = np.nan
        ok = np.isfinite(out)
        off = ok & (out != np.round(out))
        if off.any():
            t = panel.periods
            outside = off & ((out < t.min()) | (out > t.max()) | (out == 0))
            raise TreatmentError(
                f"The onsets in {onset!r} must fall on whole periods of the time column; rows at "
                f"{_where(frame, off, entity, time)} hold {sorted(set(out[off].tolist()))[:3]}."
                + (f" {_NEVER_HINT}" if outside.any() else "")
            )
    else:
        numbers = np.array(
            [not isinstance(v, (str, bool)) and isinstance(v, (int, float, np.number)) for v in raw], dtype=bool
        )
        numbers &= ~marked.to_numpy()
        if numbers.any():
            values = sorted({_plain(v) for v in raw[numbers]})[:3]
            raise TreatmentError(
                f"The onset column {onset!r} must hold dates like the time column {time!r}; rows at "
                f"{_where(frame, numbers, entity, time)} hold the number(s) {values}. {_NEVER_HINT}"
            )
        present = raw.where(~marked)
        texts = all(isinstance(v, str) for v in present.dropna())
        dates = pd.to_datetime(present, errors="coerce", **({"format": "ISO8601"} if texts else {}))
        bad = dates.isna() & ~marked
        if bad.any():
            raise TreatmentError(
                f"The onset column {onset!r} must hold dates like the time column {time!r} (datetimes or ISO 8601 "
                f"text such as '2025-01-06'); rows at {_where(frame, bad.to_numpy(), entity, time)} hold "
                f"{list(pd.unique(raw[bad]))[:3]}."
            )
        out = _date_periods(panel, dates, t0)
    ok = np.isfinite(out)
    ent = frame[entity].to_numpy()
    varies = pd.Series(np.nan_to_num(out, nan=np.inf)).groupby(ent, sort=False).transform("nunique").to_numpy() > 1
    if varies.any():
        teams = pd.unique(ent[varies])
        raise CohortNotConstantError(
            f"The onset column {onset!r} changes within {entity} {[_plain(t) for t in teams[:5]]} "
            f"({_where(frame, varies, entity, time)}): a team has one onset period."
        )
    if not ok.any():
        raise NoTreatmentVariationError(
            f"The onset column {onset!r} marks every team as never treated: the treatment never varies."
        )
    return out


# ---------------------------------------------------------------------------------------------- designs
def _binned_event_times(rel: np.ndarray, treated: np.ndarray, leads, lags, reference: int) -> np.ndarray:
    for name, v in (("leads", leads), ("lags", lags)):
        if v is not None and (not isinstance(v, (int, np.integer)) or v < 0):
            raise SpecificationError(f"{name}={v!r} must be a non-negative integer or None (every event time).")
    lo = -int(leads) if leads is not None else int(np.nanmin(rel[treated]))
    hi = int(lags) if lags is not None else int(np.nanmax(rel[treated]))
    binned = np.where(treated, np.clip(rel, lo, hi), np.nan)
    observed = np.unique(binned[treated]).astype(int)
    if reference not in observed:
        raise SpecificationError(
            f"reference={reference} is outside the data: the event times observed for treated teams (binned to "
            f"[{lo}, {hi}]) are {observed.tolist()}. Choose one of them (usually -1)."
        )
    return binned


def _dummies(keys: np.ndarray, levels: Sequence) -> np.ndarray:
    return np.column_stack([(keys == lv).astype(float) for lv in levels]) if levels else np.zeros((len(keys), 0))


def _wald(b: np.ndarray, V: np.ndarray, df_denom: int) -> dict:
    q = len(b)
    W = float(b @ np.linalg.solve(V, b))
    return {
        "statistic": W / q,
        "df": q,
        "df_denom": int(df_denom),
        "pvalue": float(stats.f.sf(W / q, q, df_denom)),
        "distribution": "F",
        "chi2": W,
        "chi2_pvalue": float(stats.chi2.sf(W, q)),
    }


def _seed_int(seed) -> int:
    """One integer seed for all coefficients, so that every wild bootstrap reuses the same draws."""
    return int(np.random.default_rng(seed).integers(0, 2**63 - 1))


def event_study(
    data: pd.DataFrame,
    *,
    outcome: str,
    entity: str,
    time: str,
    treatment: str | None = None,
    onset: str | None = None,
    share: str | None = None,
    never: object = None,
    reference: int = -1,
    cluster: str | None = None,
    leads: int | None = None,
    lags: int | None = None,
    method: Literal["twfe", "sun-abraham"] = "twfe",
    control: Literal["never", "last"] = "never",
    cov: Literal["cluster", "wild"] = "cluster",
    level: float = 0.95,
    draws: int = 9999,
    boot_weights: Literal["rademacher", "webb"] = "rademacher",
    seed: int | np.random.Generator | None = None,
) -> EstimationResults:
    """Event-study regression of a rollout, with clustered (CRV1) or wild-bootstrap inference.

    Give exactly one of ``treatment``, ``onset`` or ``share``.

    Parameters
    ----------
    data
        Long panel, one row per (entity, time). Not modified.
    outcome, entity, time
        Column names. ``time`` holds integer periods or dates (datetimes, or ISO 8601 text such as
        ``"2025-01-06"`` as read from a CSV, parsed as :class:`causalcts.Panel` does).
    treatment
        A 0/1 column that is absorbing (once 1, always 1); each team's onset is its first period with 1, and a team
        that is never 1 is never treated.
    onset
        A column with each team's onset period (same units as ``time``: dates, or ISO 8601 text, when ``time`` holds
        dates), constant within the team; NaN, NaT, infinity or the value ``never`` mark never-treated teams. The
        cohorts of :func:`causalcts.did.cohorts.onset_cohort` can be passed as they are (0, or NaT for dates, for
        never treated: pass ``never=0`` with integer periods).
    share
        A continuous exposure (e.g. the share of developers using a tool): distributed leads and lags
        ``F{leads}.share .. share .. L{lags}.share`` in a TWFE regression; ``leads`` and ``lags`` are required and
        ``reference`` is not used.
    never
        Value of the ``onset`` column meaning "never treated" (e.g. 0 in mpdta's ``first.treat``).
    reference
        Omitted event time (default -1, the period before onset).
    cluster
        Cluster column (default: ``entity``).
    leads, lags
        Event window ``[-leads, lags]``; end points are binned (``e-{leads}`` collects every earlier event time,
        ``e{lags}`` every later one). None (default) keeps every observed event time unbinned.
    method
        ``"twfe"`` (one dummy per event time) or ``"sun-abraham"`` (cohort-by-event-time interactions aggregated
        with cohort shares).
    control
        Sun and Abraham's control cohort: ``"never"`` (never-treated teams) or ``"last"`` (the last-treated cohort;
        every period from its onset on is dropped, with a :class:`~causalcts.errors.DataWarning`).
    cov
        ``"cluster"`` (CRV1, t(G-1)) or ``"wild"``: CRV1 standard errors plus wild cluster restricted bootstrap
        p-values and intervals for every coefficient in ``info["wild"]`` (entities must be nested in clusters).
    level
        Confidence level of the bootstrap intervals (the CRV1 ones come from ``res.conf_int(level)``).
    draws, boot_weights, seed
        Bootstrap draws (enumerated when 2^G <= draws), weight distribution and seed (``cov="wild"`` only).

    Returns
    -------
    EstimationResults
        ``params`` ordered by event time, named ``"e-3", ..., "e0", "e1"`` (the reference is left out; binary
        designs) or ``"F2.share", ..., "share", "L1.share"`` (share designs); ``tests["pretrend"]``: the joint F
        test that every lead is zero with the cluster covariance (``df`` leads, ``df_denom`` G - 1; the chi2
        version beside it); ``info["event_times"]`` (integers aligned with ``params``), ``info["reference"]``,
        ``info["binned"]``, ``info["n_clusters"]``, ``info["cohort_effects"]`` (Sun and Abraham) and
        ``info["wild"]`` (``cov="wild"``). Plot it with :func:`causalcts.plots.event_plots.plot_event_study`.

    Raises
    ------
    causalcts.errors.NoTreatmentVariationError
        The treatment never varies.
    causalcts.errors.TreatmentError
        A binary treatment that switches off, or onsets that are not periods of ``time`` (e.g. numbers such as 0
        in the onset column of a date panel: the message suggests ``never=0`` or NaN).
    causalcts.errors.SpecificationError
        A reference period outside the observed event times, or incompatible options.
    causalcts.errors.TooFewClustersError
        Fewer than two clusters.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from causalcts.did import event_study
    >>> rng = np.random.default_rng(0)
    >>> teams, weeks = np.repeat(np.arange(40), 8), np.tile(np.arange(8), 40)
    >>> start = np.where(np.arange(40) < 20, 4 + np.arange(40) % 3, np.nan)[teams]  # half never adopt
    >>> df = pd.DataFrame({"team": teams, "week": weeks, "onset": start})
    >>> df["y"] = rng.normal(size=40)[teams] + 0.1 * weeks + 0.5 * (weeks >= start) + rng.normal(0, 0.3, 320)
    >>> res = event_study(df, outcome="y", entity="team", time="week", onset="onset", leads=3, lags=2)
    >>> list(res.params.index)
    ['e-3', 'e-2', 'e0', 'e1', 'e2']
    >>> res.info["binned"]
    {'e-3': '<= -3', 'e2': '>= 2'}
    >>> bool(abs(res.params["e0"] - 0.5) < 0.3), res.tests["pretrend"]["df"]
    (True, 2)
    """
    check_option("method", method, ("twfe", "sun-abraham"))
    check_option("cov", cov, ("cluster", "wild"))
    check_option("control", control, ("never", "last"))
    if not isinstance(level, (int, float)) or not 0 < level < 1:
        raise SpecificationError(f"level={level!r} must lie strictly between 0 and 1 (e.g. 0.95).")
    given = {k: v for k, v in (("treatment", treatment), ("onset", onset), ("share", share)) if v is not None}
    if len(given) != 1:
        raise SpecificationError(
            "Give exactly one of treatment= (0/1 absorbing), onset= (onset period per team) or share= "
            f"(continuous exposure); got {sorted(given) or 'none'}."
        )
    if share is not None and method != "twfe":
        raise SpecificationError('method="sun-abraham" needs a binary onset (treatment= or onset=), not share=.')
    if share is not None and (leads is None or lags is None):
        raise SpecificationError("A share design needs explicit leads= and lags= (e.g. leads=2, lags=4).")
    if not isinstance(reference, (int, np.integer)):
        raise SpecificationError(f"reference={reference!r} must be an integer event time (e.g. -1).")
    if not isinstance(data, pd.DataFrame):
        raise MissingColumnError(f"event_study needs a pandas DataFrame, not {type(data).__name__}.")
    cluster = cluster or entity
    for role, col in (("onset", onset), ("cluster", cluster)):
        if col is not None and col not in data.columns:
            raise MissingColumnError(f"The {role} column {col!r} is not in the data; columns are {list(data.columns)}.")
    spec = {
        "outcome": outcome, "entity": entity, "time": time, "treatment": treatment, "onset": onset, "share": share,
        "never": never if never is None or isinstance(never, (int, float, str)) else str(never),
        "reference": int(reference), "cluster": cluster, "leads": leads, "lags": lags, "method": method,
        "control": control, "cov": cov, "level": level, "draws": draws, "boot_weights": boot_weights,
        "seed": seed if seed is None or isinstance(seed, int) else "generator",
    }  # fmt: skip

    numeric = [outcome] + [c for c in (treatment, share) if c is not None]
    panel = Panel(data, entity=entity, time=time, columns=numeric)
    frame = panel.data
    if frame[cluster].isna().any():
        rows = _where(frame, frame[cluster].isna().to_numpy(), entity, time)
        raise MissingValueError(f"The cluster column {cluster!r} is missing at {rows}.")
    keep = np.ones(len(frame), dtype=bool)
    info: dict = {"design": "share" if share is not None else "onset", "reference": int(reference), "cluster": cluster}
    info["binned"] = {}

    if share is not None:
        s = frame[share]
        if np.ptp(s.to_numpy(dtype=float)) == 0 or (s.groupby(frame[entity]).transform("nunique") == 1).all():
            raise NoTreatmentVariationError(
                f"The share {share!r} never varies within any {entity}: the fixed effects absorb it."
            )
        assert leads is not None and lags is not None  # a share design without both was refused above
        event_times = list(range(-int(leads), int(lags) + 1))
        names = [lag_name(share, k) for k in event_times]
        D = np.column_stack([panel.lag(share, k).to_numpy() for k in event_times])
        keep = np.all(np.isfinite(D), axis=1)
        if not keep.all():
            warnings.warn(
                f"Dropped {int((~keep).sum())} of {len(keep)} rows where a lead or lag of {share!r} falls outside "
                "the observed periods.",
                DataWarning,
                stacklevel=2,
            )
        lead_names = [n for n, k in zip(names, event_times, strict=True) if k < 0]
        formula = f"{outcome} ~ l({share}, -{int(leads)}:{int(lags)}) | {entity} + {time}"
        return _fit(frame, keep, D, names, names, event_times, lead_names, None, formula, info, spec,
                    outcome=outcome, entity=entity, time=time, cluster=cluster, method="share", cov=cov,
                    level=level, draws=draws, boot_weights=boot_weights, seed=seed)  # fmt: skip

    dates = _as_dates(frame[time], time)  # datetimes or ISO 8601 text, parsed as Panel does; None for numbers
    if dates is not None:
        frame[time] = dates
    t0 = dates.min() if dates is not None else None
    step = panel.step if t0 is not None else None  # a Timedelta or a calendar offset (months, quarters, years)
    t_num = _time_number(frame[time], t0, panel, "time column")
    if treatment is not None:
        cohort = _onset_from_treatment(frame, entity, time, treatment, t_num)
    else:
        assert onset is not None  # exactly one of treatment/onset/share was given, and share returned above
        cohort = _onset_from_column(frame, entity, time, onset, never, t0, panel)
    rel = t_num - cohort
    treated = np.isfinite(rel)
    # teams never observed before their onset identify no pre-period: drop them (as Sun-Abraham and did do)
    first_rel = pd.Series(rel).groupby(frame[entity].to_numpy()).transform("min").to_numpy()
    always = treated & (first_rel >= 0)
    if always.any():
        # onsets before every period, 0 among them, are likely a never-treated code that was not declared
        hint = f" {_NEVER_HINT}" if onset is not None and np.any(cohort[always] < np.nanmin(t_num)) else ""
        warnings.warn(
            f"Dropped {int(always.sum())} rows of {pd.unique(frame.loc[always, entity]).size} {entity}(s) treated "
            f"from their first observed period (no pre-treatment period to compare with).{hint}",
            DataWarning,
            stacklevel=2,
        )
        keep &= ~always
        treated &= keep
        if not treated.any():
            raise NoTreatmentVariationError(
                "No treated team has a period before its onset: the treatment never varies."
            )
    if method == "sun-abraham":
        if control == "never":
            if not (keep & ~np.isfinite(rel)).any():
                raise NoControlGroupError(
                    'method="sun-abraham" with control="never" needs never-treated teams, and there are none; '
                    'pass control="last" to use the last-treated cohort as the control.'
                )
        else:
            last = np.nanmax(cohort[treated])
            late = keep & (t_num >= last)
            if late.any():
                warnings.warn(
                    f"Dropped {int(late.sum())} rows from the last-treated cohort's onset on (control='last').",
                    DataWarning,
                    stacklevel=2,
                )
            keep &= ~late
            treated &= keep & (cohort != last)
            info["control_cohort"] = _label(last, t0, step, panel.freq)
    binned = _binned_event_times(rel, treated, leads, lags, int(reference))
    event_times = [int(e) for e in np.unique(binned[treated]) if e != reference]
    names = [event_time_name(e) for e in event_times]
    lead_names = [event_time_name(e) for e in event_times if e < 0]
    lo, hi = int(np.min(binned[treated])), int(np.max(binned[treated]))
    if (rel[treated] < lo).any():
        info["binned"][event_time_name(lo)] = f"<= {lo}"
    if (rel[treated] > hi).any():
        info["binned"][event_time_name(hi)] = f">= {hi}"
    info["n_treated"] = int(pd.unique(frame.loc[treated, entity]).size)
    info["n_never_treated"] = int(pd.unique(frame.loc[keep & ~np.isfinite(rel), entity]).size)
    if method == "twfe":
        D = _dummies(np.where(treated, binned, np.nan), event_times)
        W_agg, columns = None, names
        formula = f"{outcome} ~ i(rel_time, ref={int(reference)}) | {entity} + {time}"
    else:
        cells = [
            (c, e)
            for c in np.unique(cohort[treated])
            for e in event_times
            if np.any(treated & (cohort == c) & (binned == e))
        ]
        D = np.column_stack([(treated & (cohort == c) & (binned == e)).astype(float) for c, e in cells])
        columns = [f"{_label(c, t0, step, panel.freq)}:{event_time_name(e)}" for c, e in cells]
        W_agg = np.zeros((len(event_times), len(cells)))
        for j, (_, e) in enumerate(cells):
            W_agg[event_times.index(e), j] = D[:, j].sum()  # rows of the cell in the estimation sample
        W_agg /= W_agg.sum(axis=1, keepdims=True)
        formula = f"{outcome} ~ sunab(onset, {time}, ref.p={int(reference)}) | {entity} + {time}"
    return _fit(frame, keep, D, names, columns, event_times, lead_names, W_agg, formula, info, spec,
                outcome=outcome, entity=entity, time=time, cluster=cluster, method=method, cov=cov, level=level,
                draws=draws, boot_weights=boot_weights, seed=seed)  # fmt: skip


def _label(period: float, t0, step, freq=None) -> str:
    """Readable cohort label: the onset period (``"2004"``) or date (``"2024-03-04"``)."""
    if t0 is None:
        return f"{period:g}"
    if isinstance(step, pd.Timedelta):
        return str((t0 + int(period) * step).date())
    return str((pd.Period(t0, freq=freq) + int(period)).to_timestamp().date())  # calendar months, quarters, years


def _fit(frame, keep, D, names, columns, event_times, lead_names, W_agg, formula, info, spec, *, outcome, entity,
         time, cluster, method, cov, level, draws, boot_weights, seed) -> EstimationResults:  # fmt: skip
    """Two-way within regression of the outcome on the design D (rows ``keep``), CRV1, aggregation, tests."""
    frame, D = frame.loc[keep], D[keep]
    y = frame[outcome].to_numpy(dtype=float)
    ent = pd.factorize(frame[entity], sort=True)[0]
    per = pd.factorize(frame[time], sort=True)[0]
    clusters = frame[cluster].to_numpy()
    codes, n_g = cluster_codes(clusters)
    col_names = columns
    Mt = two_way_demean(np.column_stack([y, D]), ent, per)
    yt, Xt = Mt[:, 0], Mt[:, 1:]
    try:
        check_full_rank(pd.DataFrame(Xt, columns=col_names), what="event-time regressor")
    except CollinearityError as err:
        hint = ""
        if info.get("n_never_treated") == 0:
            hint = (
                " Without never-treated teams the event-time dummies and the period effects are collinear: bin the "
                'end points (leads=, lags=) or use method="sun-abraham" with control="last".'
            )
        raise CollinearityError(f"After removing team and period effects: {err}{hint}") from None
    XtX_inv = np.linalg.inv(Xt.T @ Xt)
    beta = XtX_inv @ (Xt.T @ yt)
    resid = yt - Xt @ beta
    V = crv1(Xt, resid, codes, bread=XtX_inv, fixed_effects=[ent, per])
    if W_agg is not None:
        info["cohort_effects"] = {
            n: {"estimate": float(b), "std_error": float(s)}
            for n, b, s in zip(col_names, beta, V.std_errors, strict=True)
        }
        info["weights"] = {
            event_time_name(e): {col_names[j]: float(W_agg[i, j]) for j in np.flatnonzero(W_agg[i])}
            for i, e in enumerate(event_times)
        }
        params = W_agg @ beta
        Vp = W_agg @ V.cov @ W_agg.T
    else:
        params, Vp = beta, np.array(V.cov)
    se = np.sqrt(np.clip(np.diag(Vp), 0.0, None))
    tests = {}
    if lead_names:
        idx = [names.index(n) for n in lead_names]
        tests["pretrend"] = {**_wald(params[idx], Vp[np.ix_(idx, idx)], n_g - 1), "terms": ", ".join(lead_names)}
    if cov == "wild":
        info["wild"] = _wild(frame, y, D, ent, per, codes, W_agg, names, V.ssc, draws, boot_weights, seed, level)
    index = pd.MultiIndex.from_arrays([frame[entity].to_numpy(), frame[time].to_numpy()], names=[entity, time])
    info.update(
        event_times=[int(e) for e in event_times],
        n_clusters=n_g,
        level=level,
        nobs_per_event_time={n: int(np.sum(D[:, j] != 0)) for j, n in enumerate(names)} if W_agg is None else {
            event_time_name(e): int(sum(np.sum(D[:, j] != 0) for j in np.flatnonzero(W_agg[i])))
            for i, e in enumerate(event_times)
        },
    )  # fmt: skip
    cov_type = f"CRV1 clustered by {cluster}" + (
        f"; wild cluster bootstrap (WCR, {boot_weights}) in info['wild']" if cov == "wild" else ""
    )
    return EstimationResults(
        params=pd.Series(params, index=names),
        std_errors=pd.Series(se, index=names),
        cov=pd.DataFrame(Vp, index=names, columns=names),
        nobs=len(y),
        n_entities=int(ent.max()) + 1,
        method="event-study " + method,
        formula=formula,
        cov_type=cov_type,
        tests=tests,
        dist="t",
        df_resid=float(n_g - 1),
        info=info,
        spec=spec,
        resid=pd.Series(resid, index=index, name="resid"),
        fitted=pd.Series(y - resid, index=index, name="fitted"),
    )


def _wild(frame, y, D, ent, per, codes, W_agg, names, ssc, draws, boot_weights, seed, level) -> dict:
    """WCR bootstrap of every coefficient: entity effects partialled out (nested in clusters), periods as dummies."""
    if not is_nested(ent, codes):
        raise SpecificationError(
            'cov="wild" needs every team inside one cluster (cluster by the entity or a coarser group), so that the '
            "team effects can be partialled out exactly."
        )
    n_per = int(per.max()) + 1
    T = np.zeros((len(y), n_per - 1))
    T[per > 0, per[per > 0] - 1] = 1.0
    M = group_demean(np.column_stack([y, D, T]), ent)
    yw, Xw = M[:, 0], M[:, 1:]
    base = _seed_int(seed)
    p = D.shape[1]
    out = {}
    for i, name in enumerate(names):
        R = np.zeros(Xw.shape[1])
        if W_agg is None:
            R[i] = 1.0
        else:
            R[:p] = W_agg[i]
        res = wild_cluster_bootstrap(
            Xw, yw, codes, restriction=R, draws=draws, weights=boot_weights, ssc=ssc, level=level, seed=base
        )
        out[name] = {
            k: res.to_dict()[k] for k in ("statistic", "pvalue", "lower", "upper", "draws", "enumerated", "weights")
        }
    return out
