"""A validated entity-by-time panel with gap-aware lag, lead and difference operators."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from causalcts.data.schema import NONNEGATIVE_COLUMNS, NUMERIC_SCHEMA_COLUMNS, SHARE_COLUMNS
from causalcts.errors import (
    CollinearityError,
    DataFileError,
    DataWarning,
    DuplicateKeyError,
    EmptyPanelError,
    IrregularTimeError,
    MissingColumnError,
    MissingValueError,
    NonNumericError,
    RangeError,
    SpecificationError,
    TooFewPeriodsError,
    describe_rows,
)

__all__ = ["Panel", "check_full_rank", "lag_name"]


def lag_name(column: str, k: int) -> str:
    """Stata-style label of a lag: ``x`` for lag 0, ``L1.x`` for lag 1, ``F1.x`` for lead 1."""
    if k == 0:
        return column
    return f"L{k}.{column}" if k > 0 else f"F{-k}.{column}"


def _read(source: object) -> pd.DataFrame:
    """Turn the ``data`` argument of :class:`Panel` into a DataFrame (never the caller's object itself)."""
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            raise DataFileError(f"Cannot read {path}: use a .csv or .parquet file, or pass a DataFrame.")
        if not path.exists():
            raise DataFileError(f"No such file: {path}")
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    to_pandas = getattr(source, "to_pandas", None)
    if callable(to_pandas):  # polars, pyarrow tables
        frame = to_pandas()
        if isinstance(frame, pd.DataFrame):
            return frame
    rows = list(source) if isinstance(source, (list, tuple)) else None
    if isinstance(source, Mapping) or (rows is not None and all(isinstance(r, Mapping) for r in rows)):
        try:
            return pd.DataFrame(source if isinstance(source, Mapping) else rows)
        except (ValueError, TypeError) as err:
            raise DataFileError(f"Cannot turn the {type(source).__name__} into a table: {err}") from None
    raise DataFileError(
        f"Panel needs a DataFrame, a list of row dicts, a dict of columns, or the path of a .csv or .parquet "
        f"file; got {type(source).__name__}."
    )


#: Calendar frequencies whose lags count calendar periods, not days (pandas Period aliases).
_CALENDAR = {"M": "M", "MS": "M", "ME": "M", "Q": "Q-DEC", "QS": "Q-DEC", "QE": "Q-DEC", "Y": "Y-DEC", "YS": "Y-DEC"}
_CALENDAR.update({"YE": "Y-DEC", "A": "Y-DEC", "AS": "Y-DEC"})
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
FREQUENCIES: tuple[str, ...] = ("D", "W", *(f"W-{d}" for d in _WEEKDAYS), "M", "Q", "Y")


def _period_freq(freq: str) -> str:
    """Normalise a user's ``freq`` to a pandas Period alias: D, W-MON .. W-SUN, M, Q-DEC or Y-DEC."""
    f = str(freq).strip().upper()
    if f == "D":
        return "D"
    if f == "W":
        return "W-SUN"
    if f.startswith("W-") and f[2:] in _WEEKDAYS:
        return f
    if f in _CALENDAR:
        return _CALENDAR[f]
    raise SpecificationError(
        f"freq={freq!r} is not supported; choose one of {', '.join(repr(x) for x in FREQUENCIES)} "
        "(W-MON .. W-SUN name the day a week ends)."
    )


def _as_dates(values: pd.Series, column: str) -> pd.Series | None:
    """The time column as naive datetimes (local wall time), or None when it holds numbers."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values
    elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return None
    else:
        present = values.dropna()
        if len(present) == 0 or pd.to_numeric(present, errors="coerce").notna().all():
            return None  # numbers stored as text: integer periods
        texts = all(isinstance(v, str) for v in present)
        if not texts and not all(hasattr(v, "year") for v in present):
            return None  # mixed numbers and text: the integer check names the rows
        fmt = {"format": "ISO8601"} if texts else {}
        try:
            dates = pd.to_datetime(values, **fmt)
        except (ValueError, TypeError):
            try:
                dates = pd.to_datetime(values, utc=True, **fmt)
            except (ValueError, TypeError):
                parsed = [pd.to_datetime(v, errors="coerce", **fmt) for v in values]
                bad = values.index[[p is pd.NaT and v == v for p, v in zip(parsed, values)]]
                raise NonNumericError(
                    f"Time column {column!r} must hold integers or dates (ISO 8601 text such as '2025-01-06'); "
                    f"{describe_rows(bad)} hold {list(values[bad].unique()[:3])}."
                ) from None
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)  # calendar periods follow the local wall time
    if dates.isna().any():
        rows = values.index[dates.isna()]
        raise MissingValueError(
            f"Time column {column!r} has missing dates in {describe_rows(rows)}; every row needs a time "
            "(dropna=True does not drop these)."
        )
    return dates.astype("datetime64[ns]")


def _describe_gap(gap: pd.Timedelta) -> str:
    days = gap / pd.Timedelta(days=1)
    return f"{days:g} day{'s' if days != 1 else ''}" if days == int(days) else str(gap)


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _check_team_weekdays(dates: pd.Series, entities: pd.Series, column: str) -> None:
    """Raise when each team's dates are weekly (gaps of whole weeks) but teams sit on different weekdays.

    Between distinct dates of the whole panel such data is a day or a few days apart, so a step inferred
    from them would be daily and leave every lag missing; ``freq='W'`` puts each date in its calendar week.
    """
    codes, uniques = pd.factorize(entities.to_numpy(), sort=False)
    ns = dates.to_numpy().astype("int64")
    order = np.lexsort((ns, codes))
    same_team = codes[order][1:] == codes[order][:-1]
    gaps = np.diff(ns[order])[same_team]
    gaps = gaps[gaps > 0]  # repeated dates are duplicates, reported later with their rows
    week = pd.Timedelta(days=7).value
    if gaps.size == 0 or np.any(gaps % week):
        return
    weekday = dates.dt.day_of_week.to_numpy()
    if len(np.unique(weekday)) < 2:
        return
    # within a team every gap is whole weeks, so each team sits on one weekday
    team_day = pd.Series(weekday).groupby(codes).first()
    counts = team_day.value_counts()
    majority = int(min(counts.index, key=lambda d: (-counts[d], d)))
    odd = team_day[team_day != majority]
    parts = []
    for day in sorted(odd.unique()):
        names = [str(uniques[c]) for c in odd.index[odd == day]]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        parts.append(f"{shown} on {_DAY_NAMES[day]}")
    raise IrregularTimeError(
        f"The dates in {column!r} are weekly within each team, but the teams report on different weekdays: "
        f"most teams ({counts[majority]} of {len(team_day)}) on {_DAY_NAMES[majority]}, {'; '.join(parts)}. "
        "A daily scale would leave every lag missing, so the period length is unclear. Pass freq='W' to put "
        "each date in its calendar week (Monday to Sunday; 'W-MON' .. 'W-SUN' name the day a week ends), "
        "or move the dates to one weekday."
    )


def _infer_freq(dates: pd.Series, column: str, entities: pd.Series | None = None) -> str | pd.Timedelta:
    """A calendar alias (``M``, ``Q-DEC``, ``Y-DEC``) or the regular step between distinct dates.

    With ``entities``, the gaps within each entity are checked first: weekly dates on different
    weekdays for different entities raise :class:`~causalcts.errors.IrregularTimeError`.
    """
    uniq = pd.DatetimeIndex(np.unique(dates.to_numpy()))
    if len(uniq) < 2:
        return pd.Timedelta(days=7)
    same_clock = bool((uniq - uniq.normalize() == uniq[0] - uniq[0].normalize()).all())
    if same_clock:
        month_end = bool(uniq.is_month_end.all())
        one_day = uniq.day.nunique() == 1
        for alias, months in (("Y-DEC", 12), ("Q-DEC", 3), ("M", 1)):
            # every date at the same place in its period: the same day of the same month of the period,
            # or the last day of the same month of the period
            same_month = pd.Index((uniq.month - 1) % months).nunique() == 1
            anchored = same_month and (one_day or month_end)
            if anchored and uniq.to_period(alias).nunique() == len(uniq):
                return alias
    if entities is not None:
        _check_team_weekdays(dates, entities, column)
    gaps = np.diff(uniq.asi8)
    step = int(gaps.min())
    if np.any(gaps % step) or np.median(gaps) >= 2 * step:
        shown = ", ".join(_describe_gap(pd.Timedelta(int(g), unit="ns")) for g in np.unique(gaps)[:4])
        raise IrregularTimeError(
            f"The dates in {column!r} are irregular (steps of {shown} between distinct dates), so the period "
            "length is unclear. Pass freq= to Panel or fit, e.g. freq='W' (weekly; 'W-MON' .. 'W-SUN' name "
            "the day a week ends), 'D', 'M', 'Q' or 'Y'."
        )
    return pd.Timedelta(step, unit="ns")


@dataclass(frozen=True)
class _PeriodScale:
    """How a panel turns times into integer periods: ``kind`` is "int", "step" (a fixed step from
    ``origin`` in nanoseconds) or "alias" (pandas Period ordinals of ``alias`` minus ``origin``)."""

    kind: str
    origin: int = 0
    step_ns: int = 1
    alias: str | None = None

    def periods(self, values: pd.Series, column: str, dates: pd.Series | None = None) -> np.ndarray:
        if self.kind == "int":
            return _integer_periods(values, column)
        dates = _as_dates(values, column) if dates is None else dates
        if dates is None:
            raise NonNumericError(f"{column!r} holds numbers, but the panel's time is dates.")
        if self.kind == "step":
            return (dates.to_numpy().astype("int64") - self.origin) // self.step_ns
        return dates.dt.to_period(self.alias).array.asi8.astype(np.int64) - self.origin


def _time_to_period(
    values: pd.Series, column: str, freq: str | None = None, entities: pd.Series | None = None
) -> tuple[np.ndarray, object, str | None, _PeriodScale]:
    """Map the time column to integer periods; return (periods, step, freq, scale).

    Integers are kept as they are (negative or zero too); dates become consecutive
    periods of ``freq`` (inferred when None, from the gaps within each of ``entities``
    too), so a missing period is a gap. An inferred 7-day step is named ``W-<weekday
    of the dates>``: each date is the last day of its own pandas week of that anchor.
    """
    dates = _as_dates(values, column)
    if dates is None:
        if freq is not None:
            raise SpecificationError(f"freq={freq!r} applies to dates, but the time column {column!r} holds numbers.")
        return _integer_periods(values, column), 1, None, _PeriodScale("int")
    if freq is not None:
        alias = _period_freq(freq)
    else:
        inferred = _infer_freq(dates, column, entities)
        if isinstance(inferred, pd.Timedelta):
            ns = dates.to_numpy().astype("int64")
            days = inferred / pd.Timedelta(days=1)
            if days == 7:  # every date on one weekday: the pandas week ending that day ("W-MON" for Mondays)
                name: str | None = f"W-{_WEEKDAYS[pd.Timestamp(ns.min()).day_of_week]}"
            else:
                name = "D" if days == 1 else None
            scale = _PeriodScale("step", origin=int(ns.min()), step_ns=int(inferred.value))
            return scale.periods(values, column, dates), inferred, name, scale
        alias = inferred
    periods = dates.dt.to_period(alias)
    ordinals = periods.array.asi8.astype(np.int64)
    if alias == "D":
        step: object = pd.Timedelta(days=1)
    elif alias.startswith("W"):
        step = pd.Timedelta(days=7)
    else:
        step = periods.dtype.freq
    return ordinals - ordinals.min(), step, alias, _PeriodScale("alias", origin=int(ordinals.min()), alias=alias)


def _integer_periods(values: pd.Series, column: str) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna() & values.notna()
    if bad.any():
        raise NonNumericError(
            f"Time column {column!r} must hold integers or dates; "
            f"{describe_rows(values.index[bad])} hold {list(values[bad].unique()[:3])}."
        )
    arr = numeric.to_numpy(dtype=float)
    if not np.all(np.isfinite(arr)):
        rows = values.index[~np.isfinite(arr)]
        raise MissingValueError(
            f"Time column {column!r} has missing values in {describe_rows(rows)}; every row needs a time "
            "(dropna=True does not drop these)."
        )
    if np.any(arr != np.round(arr)):
        rows = values.index[arr != np.round(arr)]
        raise NonNumericError(f"Time column {column!r} must hold whole numbers; {describe_rows(rows)} do not.")
    return arr.astype(np.int64)


def numeric_column(frame: pd.DataFrame, col: str) -> pd.Series:
    """Column ``col`` of ``frame`` as floats (booleans as 0/1); text that is not a number raises
    :class:`~causalcts.errors.NonNumericError` naming the column, the values and the rows. NaN stays NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.data.panel import numeric_column
    >>> numeric_column(pd.DataFrame({"d": [True, False]}), "d").tolist()
    [1.0, 0.0]
    """
    s = frame[col]
    if pd.api.types.is_bool_dtype(s):
        return s.astype(float)
    out = pd.to_numeric(s, errors="coerce")
    bad = out.isna() & s.notna()
    if bad.any():
        raise NonNumericError(
            f"Column {col!r} must be numeric but holds {list(pd.unique(s[bad]))[:3]} in {describe_rows(s.index[bad])}."
        )
    return out.astype(float)


def check_full_rank(frame: pd.DataFrame, columns: Sequence[str] | None = None, *, what: str = "regressor") -> None:
    """Raise :class:`CollinearityError` if a column is constant or a linear combination of others.

    Parameters
    ----------
    frame
        Numeric data, one column per regressor.
    columns
        Columns to check (default: all).
    what
        Word used in the message ("regressor", "instrument").

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.data.panel import check_full_rank
    >>> check_full_rank(pd.DataFrame({"a": [1.0, 2, 3], "b": [0.0, 1, 5]}))
    """
    cols = list(frame.columns if columns is None else columns)
    x = frame[cols].to_numpy(dtype=float)
    if x.shape[0] == 0:
        raise EmptyPanelError(f"No rows left to estimate the {what}s {cols}.")
    for j, c in enumerate(cols):
        if np.all(x[:, j] == 0):
            raise CollinearityError(f"The {what} {c!r} is zero in every row used.")
    if x.shape[0] < x.shape[1]:
        raise CollinearityError(f"{x.shape[1]} {what}s but only {x.shape[0]} rows: the {what}s are collinear.")
    scale = np.sqrt((x**2).mean(axis=0))
    scale[scale == 0] = 1.0
    xs = x / scale
    # QR without pivoting: a near-zero R[j, j] means column j adds nothing to the columns before it.
    r = np.linalg.qr(xs, mode="r")
    diag = np.abs(np.diag(r))
    # Relative residual norm of each column after projecting out the earlier ones; 1e-9 is far above
    # float64 round-off on unit-scaled columns and far below any real variation.
    rel = diag / np.linalg.norm(xs, axis=0)
    dependent = [cols[j] for j in range(len(cols)) if rel[j] <= 1e-9]
    if dependent:
        first = dependent[0]
        j = cols.index(first)
        if np.ptp(x[:, j]) == 0:
            raise CollinearityError(
                f"The {what} {first!r} is constant ({x[0, j]:g}) in every row used; it is absorbed by the "
                "intercept or the fixed effects. Remove it."
            )
        raise CollinearityError(
            f"The {what} {first!r} is a perfect linear combination of {cols[:j]}; remove it or one of those."
        )


class Panel:
    """A validated panel of entities (teams) observed over periods (weeks).

    The caller's DataFrame is copied and never modified. Rows are sorted by entity
    and time. Time may be integers (week numbers, years; zero and negative values
    work too) or dates (datetime columns, time-zone aware or not, or ISO 8601 text
    such as ``"2025-01-06"``). Dates are mapped to consecutive periods of ``freq``,
    so a missing period is a gap. Without ``freq`` the frequency is inferred:
    monthly, quarterly or yearly when every date sits at the same place in its
    calendar period (lags then count calendar months, quarters or years), else the
    regular step between distinct dates (a day, a week); irregular dates raise
    :class:`~causalcts.errors.IrregularTimeError`, which asks for ``freq``. So do
    dates that are weekly within each entity but on different weekdays for different
    entities (say most teams on Mondays, one on Tuesdays): ``freq="W"`` then puts
    each date in its calendar week. Weekly dates that share a weekday get the
    :attr:`freq` of that weekday, ``"W-MON"`` for Mondays: in pandas a ``W-MON``
    week ends on Monday, so each date is the last day of its own week and
    ``Panel(data, freq=panel.freq)`` gives the same periods.

    Parameters
    ----------
    data
        A DataFrame, a list of row dicts, a dict of columns, or the path of a CSV or Parquet file.
    entity, time
        Names of the entity and time columns.
    freq
        Period of date times: ``"D"``, ``"W"`` (weeks ending Sunday), ``"W-MON"`` .. ``"W-SUN"``
        (weeks ending that day), ``"M"``, ``"Q"`` or ``"Y"``. Default: inferred from the dates.
        Not allowed with integer times.
    columns
        Numeric columns to validate beyond the telemetry schema columns present.
    dropna
        If False (default) NaN or infinity in a validated column is an error; if
        True those rows are dropped with a :class:`~causalcts.errors.DataWarning`
        that counts them.
    min_entities
        Fewest entities accepted (default 2: one team is not a panel).

    Raises
    ------
    causalcts.errors.CausalCTSError
        For every problem in the data; the message names the column and rows.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts import Panel
    >>> df = pd.DataFrame({"team": ["a", "a", "a", "b", "b"], "week": [1, 2, 4, 1, 2],
    ...                    "crs_merged": [3, 5, 4, 2, 2], "developers": [2, 2, 2, 1, 1]})
    >>> p = Panel(df, entity="team", time="week")
    >>> p.lag("crs_merged").tolist()   # week 4 follows a gap, so its lag is missing
    [nan, 3.0, nan, nan, 2.0]
    >>> p.per_builder("crs_merged").tolist()
    [1.5, 2.5, 2.0, 2.0, 2.0]

    Monthly dates are lagged by calendar month:

    >>> monthly = pd.DataFrame({"team": ["a", "a", "b", "b"], "week": ["2025-01-01", "2025-02-01"] * 2,
    ...                         "crs_merged": [3, 5, 2, 4]})
    >>> m = Panel(monthly)
    >>> m.freq, m.lag("crs_merged").tolist()
    ('M', [nan, 3.0, nan, 2.0])
    """

    def __init__(
        self,
        data: pd.DataFrame | str | Path,
        *,
        entity: str = "team",
        time: str = "week",
        columns: Iterable[str] | None = None,
        dropna: bool = False,
        min_entities: int = 2,
        freq: str | None = None,
    ) -> None:
        frame = _read(data)
        if frame.shape[0] == 0:
            raise EmptyPanelError("The data has no rows.")
        for role, col in (("entity", entity), ("time", time)):
            if col not in frame.columns:
                raise MissingColumnError(
                    f"The {role} column {col!r} is not in the data; columns are {list(frame.columns)}."
                )
        requested = list(dict.fromkeys(columns or []))
        missing = [c for c in requested if c not in frame.columns]
        if missing:
            raise MissingColumnError(f"Column(s) {missing} not in the data; columns are {list(frame.columns)}.")
        frame = frame.copy()
        ent = frame[entity]
        if ent.isna().any():
            raise MissingValueError(
                f"The entity column {entity!r} is missing in {describe_rows(frame.index[ent.isna()])}; every row "
                "needs an entity (dropna=True does not drop these)."
            )
        period, step, freq_used, self._scale = _time_to_period(frame[time], time, freq, frame[entity])
        self._check_duplicates(frame, entity, time, period)

        numeric = [c for c in NUMERIC_SCHEMA_COLUMNS if c in frame.columns]
        numeric += [c for c in requested if c not in numeric and c not in (entity, time)]
        for c in numeric:
            frame[c] = self._coerce_numeric(frame[c], c)
        keep = self._handle_nonfinite(frame, numeric, dropna)
        if not keep.all():
            frame, period = frame.loc[keep], period[keep.to_numpy()]
            if frame.shape[0] == 0:
                raise EmptyPanelError("No rows are left after dropping rows with missing values.")
        self._check_ranges(frame)

        codes, uniques = pd.factorize(frame[entity], sort=True)
        order = np.lexsort((period, codes))
        frame = frame.iloc[order].reset_index(drop=True)
        self._codes = codes[order].astype(np.int64)
        self._period = period[order]
        self._entities = pd.Index(uniques, name=entity)
        if len(self._entities) < min_entities:
            raise EmptyPanelError(
                f"The data holds {len(self._entities)} {entity} value(s) ({list(self._entities[:3])}); "
                f"a panel needs at least {min_entities}."
            )
        self._frame = frame
        self._validated = tuple(numeric)
        self.entity = entity
        self.time = time
        self.step = step
        self.freq = freq_used
        self._freq_arg = freq
        # Lag keys: entity code times a stride wider than the span of periods, plus the period counted from
        # the earliest one, so periods that are zero or negative (year - 1984) sort and shift correctly.
        start = int(self._period.min())
        span = int(self._period.max()) - start + 1
        self._key = self._codes * (span + 1) + (self._period - start)

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_duplicates(frame: pd.DataFrame, entity: str, time: str, period: np.ndarray) -> None:
        keys = pd.DataFrame({"e": frame[entity].to_numpy(), "p": period})
        dup = pd.Series(keys.duplicated(keep=False).to_numpy(), index=frame.index)
        if dup.any():
            pairs = frame.loc[dup, [entity, time]].drop_duplicates().head(3)
            shown = ", ".join(f"({e!r}, {t!r})" for e, t in pairs.itertuples(index=False))
            raise DuplicateKeyError(
                f"{int(dup.sum())} rows share an ({entity}, {time}) period, e.g. {shown}: "
                f"{describe_rows(frame.index[dup])}. Aggregate them to one row per {entity} and period first."
            )

    @staticmethod
    def _coerce_numeric(col: pd.Series, name: str) -> pd.Series:
        if pd.api.types.is_bool_dtype(col):
            return col.astype(float)
        if pd.api.types.is_numeric_dtype(col):
            return col
        converted = pd.to_numeric(col, errors="coerce")
        bad = converted.isna() & col.notna()
        if bad.any():
            values = list(pd.unique(col[bad]))[:3]
            raise NonNumericError(
                f"Column {name!r} must be numeric but holds {values} in {describe_rows(col.index[bad])}."
            )
        return converted

    @staticmethod
    def _handle_nonfinite(frame: pd.DataFrame, numeric: list[str], dropna: bool) -> pd.Series:
        keep = pd.Series(True, index=frame.index)
        counts = {}
        for c in numeric:
            bad = ~np.isfinite(frame[c].to_numpy(dtype=float))
            if bad.any():
                if not dropna:
                    raise MissingValueError(
                        f"Column {c!r} has NaN or infinite values in {describe_rows(frame.index[bad])}. "
                        "Fix them, or pass dropna=True to drop those rows with a warning."
                    )
                counts[c] = int(bad.sum())
                keep &= ~bad
        if counts:
            detail = ", ".join(f"{n} in {c!r}" for c, n in counts.items())
            warnings.warn(
                f"Dropped {int((~keep).sum())} of {len(keep)} rows with NaN or infinite values ({detail}).",
                DataWarning,
                stacklevel=4,
            )
        return keep

    @staticmethod
    def _check_ranges(frame: pd.DataFrame) -> None:
        for c in SHARE_COLUMNS:
            if c in frame.columns:
                v = frame[c]
                bad = (v < 0) | (v > 1)
                if bad.any():
                    raise RangeError(
                        f"Column {c!r} is a share and must lie in [0, 1]; {describe_rows(frame.index[bad])} "
                        f"hold {list(v[bad].head(3))}."
                    )
        for c in NONNEGATIVE_COLUMNS:
            if c in frame.columns:
                v = frame[c]
                bad = v < 0
                if bad.any():
                    raise RangeError(
                        f"Column {c!r} is a count or cost and cannot be negative; {describe_rows(frame.index[bad])} "
                        f"hold {list(v[bad].head(3))}."
                    )

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_csv(cls, path: str | Path, **kwargs) -> Panel:
        """Read a CSV file into a validated panel (keywords as for :class:`Panel`)."""
        return cls(pd.read_csv(path), **kwargs)

    @classmethod
    def from_parquet(cls, path: str | Path, **kwargs) -> Panel:
        """Read a Parquet file into a validated panel (keywords as for :class:`Panel`)."""
        return cls(pd.read_parquet(path), **kwargs)

    def with_columns(self, **new: Sequence[float] | pd.Series | np.ndarray) -> Panel:
        """Return a new panel with extra columns aligned to this panel's rows (validated as numeric)."""
        frame = self.data
        for name, values in new.items():
            frame[name] = np.asarray(values)
        return Panel(frame, entity=self.entity, time=self.time, columns=list(new), min_entities=1, freq=self._freq_arg)

    # ------------------------------------------------------------------ properties
    @property
    def data(self) -> pd.DataFrame:
        """A copy of the validated data, sorted by entity and time."""
        return self._frame.copy()

    def key_index(self, rows: np.ndarray | None = None) -> pd.MultiIndex:
        """(entity, time) of the given row positions of the sorted panel (all rows by default), without copying
        the data.

        Examples
        --------
        >>> from causalcts import Panel
        >>> Panel({"team": ["b", "a", "a"], "week": [1, 1, 2], "x": [1.0, 2.0, 3.0]}).key_index([0, 2]).tolist()
        [('a', 1), ('b', 1)]
        """
        ent = self._frame[self.entity].to_numpy()
        tim = self._frame[self.time].to_numpy()
        if rows is not None:
            ent, tim = ent[rows], tim[rows]
        return pd.MultiIndex.from_arrays([ent, tim], names=[self.entity, self.time])

    @property
    def columns(self) -> list[str]:
        """Column names of the data."""
        return list(self._frame.columns)

    @property
    def entities(self) -> pd.Index:
        """The distinct entities, sorted."""
        return self._entities

    @property
    def entity_codes(self) -> np.ndarray:
        """Integer code (0 to n_entities - 1) of each row's entity."""
        return self._codes.copy()

    @property
    def periods(self) -> np.ndarray:
        """Integer period of each row; gaps are kept.

        Integer times are returned as given (they may be zero or negative); dates are counted
        in periods of :attr:`freq` from the earliest date (0).
        """
        return self._period.copy()

    @property
    def n_entities(self) -> int:
        return len(self._entities)

    @property
    def n_periods(self) -> int:
        """Number of distinct periods observed."""
        return int(np.unique(self._period).size)

    @property
    def nobs(self) -> int:
        return int(self._frame.shape[0])

    @property
    def periods_per_entity(self) -> pd.Series:
        """Number of observed periods of each entity."""
        return pd.Series(np.bincount(self._codes, minlength=self.n_entities), index=self._entities, name="periods")

    @property
    def is_balanced(self) -> bool:
        """True when every entity is observed in every period of the data."""
        return bool(self.nobs == self.n_entities * self.n_periods)

    @property
    def has_gaps(self) -> bool:
        """True when some entity skips a period between its first and last observation."""
        span = pd.Series(self._period).groupby(self._codes).agg(lambda s: s.max() - s.min() + 1)
        return bool((span.to_numpy() != self.periods_per_entity.to_numpy()).any())

    def __len__(self) -> int:
        return self.nobs

    def __repr__(self) -> str:
        kind = "balanced" if self.is_balanced else "unbalanced"
        gaps = ", with gaps" if self.has_gaps else ""
        return f"Panel({self.n_entities} {self.entity} x {self.n_periods} {self.time}, {self.nobs} rows, {kind}{gaps})"

    def period_of(self, values: Iterable[object] | pd.Series) -> np.ndarray:
        """Integer periods of time values on this panel's scale (for onsets, event dates, cut-offs).

        Integers are returned as they are; dates are mapped with the panel's :attr:`freq`, so
        ``period_of(data[time])`` equals :attr:`periods` row by row.

        Examples
        --------
        >>> import pandas as pd
        >>> from causalcts import Panel
        >>> p = Panel({"team": ["a", "a", "b", "b"], "week": ["2025-01-01", "2025-02-01"] * 2, "x": [1, 2, 3, 4]})
        >>> p.period_of(["2025-04-01"]).tolist()   # three months after the first month
        [3]
        """
        series = values if isinstance(values, pd.Series) else pd.Series(list(values))
        return self._scale.periods(series, self.time)

    # ------------------------------------------------------------------ column access and checks
    def column(self, name: str) -> pd.Series:
        """A numeric column, checked for non-numeric, NaN and infinite values."""
        if name not in self._frame.columns:
            raise MissingColumnError(f"Column {name!r} is not in the panel; columns are {list(self._frame.columns)}.")
        col = self._frame[name]
        if name not in self._validated:
            col = self._coerce_numeric(col, name)
            bad = ~np.isfinite(col.to_numpy(dtype=float))
            if bad.any():
                raise MissingValueError(
                    f"Column {name!r} has NaN or infinite values in {describe_rows(np.flatnonzero(bad))} "
                    "(positions in the sorted panel)."
                )
        return col.astype(float)

    def require_periods(self, needed: int, *, why: str = "the requested lags") -> None:
        """Raise :class:`TooFewPeriodsError` if no entity has ``needed`` consecutive-enough periods."""
        span = int(self._period.max() - self._period.min() + 1)
        longest = int(self.periods_per_entity.max())
        if longest < needed or span < needed:
            raise TooFewPeriodsError(
                f"{why.capitalize()} need at least {needed} periods per {self.entity}, but the longest "
                f"{self.entity} has {longest}."
            )

    # ------------------------------------------------------------------ lag operators
    def _shift_positions(self, k: int) -> np.ndarray:
        """Row position holding the same entity at period t - k, or -1."""
        target = self._key - k
        pos = np.searchsorted(self._key, target)
        pos_c = np.minimum(pos, len(self._key) - 1)
        hit = (self._key[pos_c] == target) & (pos < len(self._key)) & (self._codes[pos_c] == self._codes)
        return np.where(hit, pos_c, -1)

    def _values(self, column: str | pd.Series | np.ndarray) -> np.ndarray:
        if isinstance(column, str):
            return self.column(column).to_numpy(dtype=float)
        arr = np.asarray(column, dtype=float)
        if arr.shape != (self.nobs,):
            raise MissingColumnError(
                f"An array of {arr.shape} values does not align with the panel's {self.nobs} rows."
            )
        return arr

    def lag(self, column: str | np.ndarray, k: int = 1) -> pd.Series:
        """Value of ``column`` k periods earlier for the same entity; NaN where that period is missing.

        A lag never reaches across a gap: the lag of the week after a missing week is NaN,
        not the previous row. Negative ``k`` gives a lead.
        """
        values = self._values(column)
        pos = self._shift_positions(int(k))
        out = np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)
        name = lag_name(column if isinstance(column, str) else "x", int(k))
        return pd.Series(out, index=self._frame.index, name=name)

    def lead(self, column: str | np.ndarray, k: int = 1) -> pd.Series:
        """Value of ``column`` k periods later for the same entity; NaN where that period is missing."""
        return self.lag(column, -int(k))

    def diff(self, column: str | np.ndarray, k: int = 1) -> pd.Series:
        """``x_t - x_{t-k}`` within entity; NaN where period t - k is missing."""
        values = self._values(column)
        out = values - self.lag(column, k).to_numpy()
        name = f"D{k if k != 1 else ''}.{column if isinstance(column, str) else 'x'}"
        return pd.Series(out, index=self._frame.index, name=name)

    def lags(self, column: str, lags: Iterable[int]) -> pd.DataFrame:
        """Several lags of one column as a DataFrame with Stata-style names (``n``, ``L1.n``, ``L2.n``)."""
        return pd.concat([self.lag(column, k).rename(lag_name(column, k)) for k in lags], axis=1)

    def per_builder(self, column: str, by: str = "developers") -> pd.Series:
        """Normalise a count by team size: ``column / by`` (e.g. CRs merged per developer-week).

        Raises :class:`~causalcts.errors.RangeError` naming the rows where ``by`` is zero.
        """
        num = self.column(column).to_numpy()
        den = self.column(by).to_numpy()
        zero = den == 0
        if zero.any():
            raise RangeError(
                f"Cannot normalise {column!r} by {by!r}: {by!r} is zero in {describe_rows(np.flatnonzero(zero))}."
            )
        return pd.Series(num / den, index=self._frame.index, name=f"{column}_per_{by}")

    def entity_means(self, column: str | np.ndarray) -> pd.Series:
        """Each row's entity mean of ``column`` (for Mundlak terms and within transformations)."""
        values = self._values(column)
        sums = np.bincount(self._codes, weights=values, minlength=self.n_entities)
        means = sums / np.bincount(self._codes, minlength=self.n_entities)
        return pd.Series(means[self._codes], index=self._frame.index)

    def to_parquet(self, path: str | Path) -> Path:
        """Write the validated data to Parquet and return the path."""
        path = Path(path)
        self._frame.to_parquet(path, index=False)
        return path
