"""Onset cohorts of a staggered rollout, derived from a continuous adoption share."""

from __future__ import annotations

import warnings
from typing import cast

import numpy as np
import pandas as pd

from causalcts.data.panel import Panel, _as_dates
from causalcts.errors import (
    CausalCTSError,
    DataWarning,
    MissingColumnError,
    MissingValueError,
    NonNumericError,
    RangeError,
    describe_rows,
)

__all__ = ["onset_cohort"]


def onset_cohort(data: pd.DataFrame, *, entity: str, time: str, share: str, threshold: float = 0.5) -> pd.Series:
    """Onset cohort of each team: the first period its adoption share reaches ``threshold``.

    Treatment is taken as absorbing: a team whose share later falls back below the threshold keeps
    its onset period. With a numeric time column, teams that never reach the threshold get cohort
    **0**, the never-treated code of :func:`causalcts.did.att_gt.att_gt` (and of R's did). With a
    date time column (datetimes, or ISO 8601 text such as ``"2025-01-06"``, parsed as
    :class:`causalcts.Panel` does) the cohorts are dates (``datetime64``) and never-treated teams get
    ``NaT``; :func:`~causalcts.did.event_study.event_study` (``onset=``) and
    :func:`~causalcts.did.att_gt.att_gt` (``cohort=``) accept that coding as it is. Rows with a
    missing share are ignored with a :class:`~causalcts.errors.DataWarning`.

    Parameters
    ----------
    data
        Panel with ``entity``, ``time`` and ``share`` columns, one row per team and period; not modified.
    entity, time, share
        Team, period (integers or dates) and adoption-share (in [0, 1]) columns.
    threshold
        Share at or above which a team counts as treated.

    Returns
    -------
    pandas.Series
        Named ``cohort``, indexed by team; ``attrs["threshold"]`` and ``attrs["share"]`` state the rule,
        ``attrs["never_treated"]`` the never-treated code (0, or ``NaT`` for dates).
        Merge it back with ``data.merge(cohorts, left_on=entity, right_index=True)``.

    Raises
    ------
    causalcts.errors.RangeError
        A share outside [0, 1].
    causalcts.errors.DuplicateKeyError
        Two rows for the same team and period.
    causalcts.errors.NonNumericError
        A share that is not a number, or a time column that holds neither integers nor dates.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.did.cohorts import onset_cohort
    >>> df = pd.DataFrame({"team": ["a"] * 3 + ["b"] * 3, "week": [1, 2, 3] * 2,
    ...                    "ai_share": [0.1, 0.6, 0.4, 0.0, 0.2, 0.3]})
    >>> c = onset_cohort(df, entity="team", time="week", share="ai_share")
    >>> c.to_dict(), c.attrs["threshold"]
    ({'a': 2, 'b': 0}, 0.5)

    Dates give date cohorts, ``NaT`` for never treated:

    >>> df["week"] = ["2025-01-06", "2025-01-13", "2025-01-20"] * 2
    >>> onset_cohort(df, entity="team", time="week", share="ai_share").tolist()
    [Timestamp('2025-01-13 00:00:00'), NaT]
    """
    if not isinstance(data, pd.DataFrame):
        raise MissingColumnError(f"onset_cohort needs a pandas DataFrame, not {type(data).__name__}.")
    missing = [c for c in (entity, time, share) if c not in data.columns]
    if missing:
        raise MissingColumnError(f"Column(s) {missing} not in the data; columns are {list(data.columns)}.")
    if not (np.isscalar(threshold) and np.isfinite(threshold)):
        raise CausalCTSError(f"threshold={threshold!r} must be a finite number (a share, e.g. 0.5).")
    frame = data[list(dict.fromkeys((entity, time, share)))].copy()
    raw = frame[share]
    s = raw.astype(float) if pd.api.types.is_bool_dtype(raw) else pd.to_numeric(raw, errors="coerce")
    bad = s.isna() & raw.notna()
    if bad.any():
        raise NonNumericError(
            f"Column {share!r} must be numeric; {describe_rows(frame.index[bad])} hold {list(pd.unique(raw[bad]))[:3]}."
        )
    gone = s.isna()
    if gone.all():
        raise MissingValueError(f"Column {share!r} is missing in every row: no team has an adoption share.")
    if gone.any():
        warnings.warn(f"Ignored {int(gone.sum())} rows with a missing {share!r}.", DataWarning, stacklevel=2)
    out_of_range = ~gone & ~((s >= 0) & (s <= 1))
    if out_of_range.any():
        raise RangeError(
            f"Column {share!r} is a share and must lie in [0, 1]; {describe_rows(frame.index[out_of_range])} "
            f"hold {list(s[out_of_range].head(3))}."
        )
    frame[share] = s
    frame = frame.loc[~gone]
    # Panel checks the time column (integers or dates, ISO text parsed) and one row per team and period
    panel = Panel(frame, entity=entity, time=time, min_entities=1)
    work = panel.data
    dates = _as_dates(work[time], time)
    if dates is None:
        work["_t"] = panel.periods
    else:
        work["_t"] = dates.to_numpy()
    first = work.loc[work[share] >= threshold].groupby(entity)["_t"].min()
    teams = pd.Index(pd.unique(work[entity]), name=entity).sort_values()
    out = first.reindex(teams).rename("cohort")
    never: object
    if dates is None:
        out = out.fillna(0)
        dtype = frame[time].dtype if pd.api.types.is_integer_dtype(frame[time]) else np.dtype("int64")
        out = out.astype(dtype)
        never = 0
    else:
        out = out.astype("datetime64[ns]")
        never = pd.NaT
    # np.isscalar's TypeGuard forgets the declared type; threshold was checked above to be a finite number
    out.attrs.update({"threshold": float(cast(float, threshold)), "share": share, "never_treated": never})
    return out
