"""Onset cohorts of a staggered rollout, derived from a continuous adoption share."""

from __future__ import annotations

import warnings
from typing import cast

import numpy as np
import pandas as pd

from causalcts.errors import CausalCTSError, DataWarning, MissingColumnError, NonNumericError, describe_rows

__all__ = ["onset_cohort"]


def onset_cohort(data: pd.DataFrame, *, entity: str, time: str, share: str, threshold: float = 0.5) -> pd.Series:
    """Onset cohort of each team: the first period its adoption share reaches ``threshold``.

    Treatment is taken as absorbing: a team whose share later falls back below the threshold keeps
    its onset period. Teams that never reach the threshold get cohort **0**, the never-treated code
    of :func:`causalcts.did.att_gt.att_gt` (and of R's did). Rows with a missing share are ignored
    with a :class:`~causalcts.errors.DataWarning`.

    Parameters
    ----------
    data
        Panel with ``entity``, ``time`` and ``share`` columns; not modified.
    entity, time, share
        Team, period and adoption-share columns.
    threshold
        Share at or above which a team counts as treated.

    Returns
    -------
    pandas.Series
        Named ``cohort``, indexed by team; ``attrs["threshold"]`` and ``attrs["share"]`` state the rule.
        Merge it back with ``data.merge(cohorts, left_on=entity, right_index=True)``.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.did.cohorts import onset_cohort
    >>> df = pd.DataFrame({"team": ["a"] * 3 + ["b"] * 3, "week": [1, 2, 3] * 2,
    ...                    "ai_share": [0.1, 0.6, 0.4, 0.0, 0.2, 0.3]})
    >>> c = onset_cohort(df, entity="team", time="week", share="ai_share")
    >>> c.to_dict(), c.attrs["threshold"]
    ({'a': 2, 'b': 0}, 0.5)
    """
    missing = [c for c in (entity, time, share) if c not in data.columns]
    if missing:
        raise MissingColumnError(f"Column(s) {missing} not in the data; columns are {list(data.columns)}.")
    if not (np.isscalar(threshold) and np.isfinite(threshold)):
        raise CausalCTSError(f"threshold={threshold!r} must be a finite number (a share, e.g. 0.5).")
    frame = data[[entity, time, share]].copy()
    s = pd.to_numeric(frame[share], errors="coerce")
    bad = s.isna() & frame[share].notna()
    if bad.any():
        raise NonNumericError(f"Column {share!r} must be numeric; {describe_rows(frame.index[bad])} are not.")
    gone = s.isna()
    if gone.any():
        warnings.warn(f"Ignored {int(gone.sum())} rows with a missing {share!r}.", DataWarning, stacklevel=2)
    frame[share] = s
    frame = frame.loc[~gone]
    reached = frame.loc[frame[share] >= threshold]
    first = reached.groupby(entity)[time].min()
    teams = pd.Index(pd.unique(frame[entity]), name=entity).sort_values()
    out = first.reindex(teams).fillna(0).rename("cohort")
    if pd.api.types.is_integer_dtype(frame[time]):
        out = out.astype(frame[time].dtype)
    # np.isscalar's TypeGuard forgets the declared type; threshold was checked above to be a finite number
    out.attrs.update({"threshold": float(cast(float, threshold)), "share": share, "never_treated": 0})
    return out
