"""Cost-to-serve-software (CTS-SW) and the delivery metrics that drive it.

Every function takes a DataFrame in the telemetry schema (or a :class:`~causalcts.Panel`)
and returns a new Series aligned to its rows; the input is never modified. A ratio whose
denominator is zero is NaN, and a :class:`~causalcts.errors.DataWarning` says how many rows.

Raw telemetry columns
---------------------
One row per team-week; the metrics are computed from these counts (:data:`RAW_COLUMNS`):

==================  ====================================================================
``developers``      developers on the team that week (developer-weeks; velocity denominators)
``crs_merged``      code reviews (CRs) merged that week
``deployments``     deployments to production that week
``rollbacks``       deployments rolled back
``interventions``   manual interventions needed by deployments
``pages``           on-call pages
``oncall_builders`` builders on call that week
``dev_cost``        developer cost of the team-week, in money (CTS-SW numerator)
==================  ====================================================================

Data whose columns are named differently need no renaming: :func:`derive` and :func:`add_metrics` take
each name as a keyword (``cost="developer_cost"``, ``developers="headcount"``, ``deployments="deploys"``,
...), and a rollout spec names them with ``cost_column``, ``developers``, ``deployments_column`` and
``crs_column`` (:func:`causalcts.workflows.spec.schema_table`).

:data:`DERIVED` maps each metric name (the column name formulas use: ``cr_velocity``,
``rollback_rate``, ...) to its function, the raw columns it needs and a description;
:func:`derive` adds the named metrics a frame lacks, :func:`add_metrics` adds them all.

Examples
--------
>>> import pandas as pd
>>> from causalcts import metrics
>>> week = pd.DataFrame({"developers": [8, 6], "crs_merged": [12, 9], "deployments": [10, 4],
...                      "rollbacks": [1, 0], "interventions": [2, 0], "pages": [3, 1],
...                      "oncall_builders": [2, 1], "dev_cost": [32000.0, 24000.0]})
>>> metrics.team_velocity(week).tolist()
[1.5, 1.5]
>>> metrics.cts_sw(week).round(1).tolist()   # dollars per deployment
[3200.0, 6000.0]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from causalcts.data.panel import Panel
from causalcts.errors import CausalCTSError, DataWarning, MissingColumnError, RangeError

__all__ = [
    "DERIVED",
    "RAW_COLUMNS",
    "CapacitySavings",
    "add_metrics",
    "capacity_saved",
    "cts_sw",
    "deploys_per_builder",
    "derive",
    "interventions_per_deploy",
    "log_cts",
    "pages_per_oncall",
    "rollback_rate",
    "team_velocity",
]

#: The raw telemetry columns (their default names) and what each holds; see the module docstring.
RAW_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "developers": "developers on the team that week (developer-weeks; velocity denominators)",
        "crs_merged": "code reviews (CRs) merged that week",
        "deployments": "deployments to production that week",
        "rollbacks": "deployments rolled back that week",
        "interventions": "manual interventions needed by that week's deployments",
        "pages": "on-call pages that week",
        "oncall_builders": "builders on call that week",
        "dev_cost": "developer cost of the team-week, in money (the CTS-SW numerator)",
    }
)

#: Keyword of :func:`derive` / :func:`add_metrics` that renames each raw column.
_RAW_KEYWORDS = {
    "developers": "developers",
    "crs_merged": "crs_merged",
    "deployments": "deployments",
    "rollbacks": "rollbacks",
    "interventions": "interventions",
    "pages": "pages",
    "oncall_builders": "oncall_builders",
    "dev_cost": "cost",
}

#: Units of software reaching customers that CTS-SW can be expressed in.
CTS_UNITS = {
    "deployments": "deployments (service-oriented architectures)",
    "crs_merged": "code reviews shipped (monoliths, scheduled releases)",
    "commits": "commits reaching customers (trunk-based development)",
}


def _frame(data: pd.DataFrame | Panel) -> pd.DataFrame:
    if isinstance(data, Panel):
        return data.data
    if not isinstance(data, pd.DataFrame):
        raise CausalCTSError(f"Expected a DataFrame or Panel, not {type(data).__name__}.")
    return data


def _ratio(data: pd.DataFrame | Panel, num: str, den: str, name: str) -> pd.Series:
    frame = _frame(data)
    for c in (num, den):
        if c not in frame.columns:
            raise MissingColumnError(f"{name} needs the column {c!r}; columns are {list(frame.columns)}.")
    n = pd.to_numeric(frame[num], errors="coerce").astype(float)
    d = pd.to_numeric(frame[den], errors="coerce").astype(float)
    negative = (n < 0) | (d < 0)
    if negative.any():
        raise RangeError(f"{name}: {num!r} or {den!r} is negative in {int(negative.sum())} rows.")
    zero = d == 0
    out = n / d.where(~zero)
    if zero.any():
        warnings.warn(
            f"{name} is undefined in {int(zero.sum())} of {len(d)} rows where {den!r} is zero; those rows are NaN.",
            DataWarning,
            stacklevel=3,
        )
    return out.rename(name)


def cts_sw(data: pd.DataFrame | Panel, unit: str = "deployments", cost: str = "dev_cost") -> pd.Series:
    """Cost to serve software: developer cost per unit of software reaching customers.

    .. math:: \\mathrm{CTS\\text{-}SW}_{it} = \\frac{\\text{developer cost}_{it}}{\\text{units shipped}_{it}}

    Parameters
    ----------
    unit
        Column counting the units shipped: ``"deployments"`` (default, microservices),
        ``"crs_merged"`` (CRs shipped, monoliths), ``"commits"`` (trunk-based), or any
        count column of the data.
    cost
        Column of developer cost.
    """
    return _ratio(data, cost, unit, "cts_sw")


def team_velocity(data: pd.DataFrame | Panel) -> pd.Series:
    """Team velocity: CRs merged per developer-week (a team-level, never an individual, measure)."""
    return _ratio(data, "crs_merged", "developers", "cr_velocity")


def deploys_per_builder(data: pd.DataFrame | Panel) -> pd.Series:
    """Deployments per builder-week (deployment velocity)."""
    return _ratio(data, "deployments", "developers", "deploys_per_builder")


def rollback_rate(data: pd.DataFrame | Panel) -> pd.Series:
    """Share of deployments rolled back (a change-failure rate)."""
    return _ratio(data, "rollbacks", "deployments", "rollback_rate")


def interventions_per_deploy(data: pd.DataFrame | Panel) -> pd.Series:
    """Manual interventions per deployment (delivery friction)."""
    return _ratio(data, "interventions", "deployments", "interventions_per_deploy")


def pages_per_oncall(data: pd.DataFrame | Panel) -> pd.Series:
    """Pages per on-call builder in the week."""
    return _ratio(data, "pages", "oncall_builders", "pages_per_oncall")


def log_cts(data: pd.DataFrame | Panel, unit: str = "deployments", cost: str = "dev_cost") -> pd.Series:
    """Natural log of :func:`cts_sw`; NaN where CTS-SW is undefined or zero."""
    cts = cts_sw(data, unit=unit, cost=cost)
    return np.log(cts.where(cts > 0)).rename("log_cts")


#: Every metric computed from raw telemetry counts: name -> (function, raw columns it needs, description).
#: The function takes a DataFrame (or Panel) and returns a Series named like the key.
DERIVED: Mapping[str, tuple[Callable[[pd.DataFrame | Panel], pd.Series], tuple[str, ...], str]] = MappingProxyType(
    {
        "cts_sw": (cts_sw, ("dev_cost", "deployments"), "developer cost per deployment (CTS-SW)"),
        "log_cts": (log_cts, ("dev_cost", "deployments"), "natural log of cts_sw"),
        "cr_velocity": (team_velocity, ("crs_merged", "developers"), "CRs merged per developer-week"),
        "deploys_per_builder": (deploys_per_builder, ("deployments", "developers"), "deployments per developer-week"),
        "rollback_rate": (rollback_rate, ("rollbacks", "deployments"), "share of deployments rolled back"),
        "interventions_per_deploy": (
            interventions_per_deploy,
            ("interventions", "deployments"),
            "manual interventions per deployment",
        ),
        "pages_per_oncall": (pages_per_oncall, ("pages", "oncall_builders"), "pages per on-call builder"),
    }
)


def _raw_names(**names: str) -> dict[str, str]:
    """Default raw column name -> the column of the data holding it (the keywords of :func:`derive`)."""
    out = {}
    for raw, kw in _RAW_KEYWORDS.items():
        col = names[kw]
        if not isinstance(col, str) or not col:
            raise CausalCTSError(f"The keyword {kw}= must name a column of the data, not {col!r}.")
        out[raw] = col
    return out


def _needed(name: str, unit: str, columns: Mapping[str, str]) -> list[str]:
    """The columns of the data metric ``name`` is computed from: numerator, denominator."""
    raw = ["dev_cost", unit] if name in ("cts_sw", "log_cts") else list(DERIVED[name][1])
    return [columns.get(c, c) for c in raw]


def _compute(
    frame: pd.DataFrame, names: list[str], unit: str, columns: Mapping[str, str] | None = None
) -> dict[str, pd.Series]:
    """Compute the named metrics, checking raw columns first; warnings are re-raised at the caller's caller.

    ``columns`` maps a default raw column name to the column of the data that holds it (identity if absent).
    """
    columns = dict(columns or {})
    for name in names:
        needed = _needed(name, unit, columns)
        absent = [c for c in needed if c not in frame.columns]
        if absent:
            kws = [f"{_RAW_KEYWORDS[r]}=" for r, c in columns.items() if c in absent]
            hint = f"; if the data call them differently, name the columns with {', '.join(kws)}" if kws else ""
            raise MissingColumnError(
                f"The metric {name!r} ({DERIVED[name][2]}) needs the raw column(s) {needed}; {absent} "
                f"{'is' if len(absent) == 1 else 'are'} not in the data{hint}. Columns are {list(frame.columns)}."
            )
    out: dict[str, pd.Series] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        for name in names:
            num, den = _needed(name, unit, columns)
            if name == "cts_sw":
                out[name] = cts_sw(frame, unit=den, cost=num)
            elif name == "log_cts":
                out[name] = log_cts(frame, unit=den, cost=num)
            else:
                out[name] = _ratio(frame, num, den, name)
    seen = set()
    for w in caught:
        msg = str(w.message)
        if issubclass(w.category, DataWarning) and msg not in seen:
            seen.add(msg)
            warnings.warn(msg, DataWarning, stacklevel=3)
        elif not issubclass(w.category, DataWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def derive(
    data: pd.DataFrame | Panel,
    names: Iterable[str],
    *,
    unit: str = "deployments",
    cost: str = "dev_cost",
    developers: str = "developers",
    crs_merged: str = "crs_merged",
    deployments: str = "deployments",
    rollbacks: str = "rollbacks",
    interventions: str = "interventions",
    pages: str = "pages",
    oncall_builders: str = "oncall_builders",
) -> pd.DataFrame:
    """Return a copy of the data with the named metrics added where they are not columns already.

    Names that are already columns are left as they are (so a simulator's or a user's own
    column wins); the other names must be keys of :data:`DERIVED` and are computed from the
    raw telemetry counts. The input is never modified.

    Parameters
    ----------
    data
        A DataFrame (or :class:`~causalcts.Panel`) with raw telemetry columns.
    names
        Column names wanted, e.g. every variable of a formula.
    unit
        Count column CTS-SW is expressed per (see :func:`cts_sw`): ``"deployments"`` and ``"crs_merged"``
        stand for the columns named by ``deployments=`` and ``crs_merged=``; any other value is a column name.
    cost, developers, crs_merged, deployments, rollbacks, interventions, pages, oncall_builders
        The column of the data holding each raw count (:data:`RAW_COLUMNS`; ``cost`` is ``dev_cost``),
        when the data name it differently, e.g. ``cost="developer_cost"``.

    Raises
    ------
    causalcts.errors.MissingColumnError
        When a name is neither a column nor a derived metric, or a metric's raw columns are absent
        (the message names them).

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts import metrics
    >>> raw = pd.DataFrame({"crs_merged": [12, 9], "developers": [8, 6], "deployments": [4, 3],
    ...                     "rollbacks": [1, 0]})
    >>> metrics.derive(raw, ["cr_velocity", "rollback_rate"]).columns.tolist()[-2:]
    ['cr_velocity', 'rollback_rate']
    >>> metrics.derive(raw, ["rollback_rate"])["rollback_rate"].tolist()
    [0.25, 0.0]
    >>> mine = pd.DataFrame({"developer_cost": [8000.0], "deploys": [4], "headcount": [2]})
    >>> metrics.derive(mine, ["cts_sw", "deploys_per_builder"], cost="developer_cost", deployments="deploys",
    ...                developers="headcount")[["cts_sw", "deploys_per_builder"]].iloc[0].tolist()
    [2000.0, 2.0]
    """
    columns = _raw_names(
        cost=cost,
        developers=developers,
        crs_merged=crs_merged,
        deployments=deployments,
        rollbacks=rollbacks,
        interventions=interventions,
        pages=pages,
        oncall_builders=oncall_builders,
    )
    frame = _frame(data).copy()
    wanted = list(dict.fromkeys([names] if isinstance(names, str) else names))
    unknown = [n for n in wanted if n not in frame.columns and n not in DERIVED]
    if unknown:
        raise MissingColumnError(
            f"{unknown} {'is' if len(unknown) == 1 else 'are'} neither a column of the data nor a derived metric; "
            f"derived metrics are {list(DERIVED)}; columns are {list(frame.columns)}."
        )
    todo = [n for n in wanted if n not in frame.columns]
    for name, values in _compute(frame, todo, unit, columns).items():
        frame[name] = values
    return frame


def add_metrics(
    data: pd.DataFrame | Panel,
    unit: str = "deployments",
    *,
    cost: str = "dev_cost",
    developers: str = "developers",
    crs_merged: str = "crs_merged",
    deployments: str = "deployments",
    rollbacks: str = "rollbacks",
    interventions: str = "interventions",
    pages: str = "pages",
    oncall_builders: str = "oncall_builders",
) -> pd.DataFrame:
    """Return a copy of the data with every metric of :data:`DERIVED` computed from the raw counts.

    Adds ``cts_sw``, ``log_cts``, ``cr_velocity``, ``deploys_per_builder``, ``rollback_rate``,
    ``interventions_per_deploy`` and ``pages_per_oncall``, the names formulas use. A column of the
    same name already present is replaced by the value computed from the counts; a
    :class:`~causalcts.errors.DataWarning` names any whose values change. Use :func:`derive` to
    keep existing columns and add only what is missing. The keywords name raw columns as in :func:`derive`.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts import metrics
    >>> week = pd.DataFrame({"developers": [8], "crs_merged": [12], "deployments": [4], "rollbacks": [1],
    ...                      "interventions": [2], "pages": [3], "oncall_builders": [2], "dev_cost": [32000.0]})
    >>> out = metrics.add_metrics(week)
    >>> out[["cr_velocity", "rollback_rate", "interventions_per_deploy", "cts_sw"]].iloc[0].tolist()
    [1.5, 0.25, 0.5, 8000.0]
    """
    columns = _raw_names(
        cost=cost,
        developers=developers,
        crs_merged=crs_merged,
        deployments=deployments,
        rollbacks=rollbacks,
        interventions=interventions,
        pages=pages,
        oncall_builders=oncall_builders,
    )
    frame = _frame(data).copy()
    changed = []
    for name, values in _compute(frame, list(DERIVED), unit, columns).items():
        if name in frame.columns:
            old = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
            new = values.to_numpy(dtype=float)
            if not np.allclose(old, new, rtol=1e-12, atol=0.0, equal_nan=True):
                changed.append(name)
        frame[name] = values
    if changed:
        warnings.warn(
            f"add_metrics replaced the existing column(s) {changed} with values computed from the counts; "
            "use metrics.derive to keep existing columns.",
            DataWarning,
            stacklevel=2,
        )
    return frame


@dataclass(frozen=True)
class CapacitySavings:
    """An effect on delivery translated into engineering capacity and money."""

    cts_change: float
    """Relative change in CTS-SW (negative is a saving)."""
    engineering_years: float
    """Engineering-years freed at constant output."""
    money: float
    """Developer cost freed at constant output, in the currency of ``dev_cost``."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def capacity_saved(
    *,
    developer_weeks: float,
    dev_cost: float,
    throughput_change: float | None = None,
    cts_change: float | None = None,
    weeks_per_year: float = 52.0,
) -> CapacitySavings:
    """Translate an effect into engineering-years and money saved at constant output.

    Give either ``throughput_change`` (relative change in units shipped at constant
    developer cost, e.g. 0.10 for +10 percent deployments) or ``cts_change`` (relative
    change in CTS-SW, e.g. -0.05).

    .. math::

        r = \\frac{1}{1 + p} - 1 \\quad\\text{(CTS-SW change from a throughput change } p)

        \\text{engineering-years} = -r \\cdot \\frac{\\text{developer-weeks}}{\\text{weeks per year}},
        \\qquad \\text{money} = -r \\cdot \\text{developer cost}

    At constant output, a CTS-SW that falls by a fraction ``-r`` needs ``-r`` less developer time
    and cost than the period actually used.

    Examples
    --------
    >>> from causalcts.metrics import capacity_saved
    >>> s = capacity_saved(developer_weeks=5200, dev_cost=20_800_000.0, throughput_change=0.25)
    >>> round(s.cts_change, 3), round(s.engineering_years, 1), round(s.money)
    (-0.2, 20.0, 4160000)
    """
    if (throughput_change is None) == (cts_change is None):
        raise CausalCTSError("Give exactly one of throughput_change and cts_change.")
    if throughput_change is not None:
        if throughput_change <= -1:
            raise RangeError(f"throughput_change={throughput_change} would ship nothing; it must exceed -1.")
        r = 1.0 / (1.0 + throughput_change) - 1.0
    else:
        r = float(cts_change)  # type: ignore[arg-type]
    if developer_weeks < 0 or dev_cost < 0 or weeks_per_year <= 0:
        raise RangeError("developer_weeks and dev_cost must be non-negative and weeks_per_year positive.")
    return CapacitySavings(cts_change=r, engineering_years=-r * developer_weeks / weeks_per_year, money=-r * dev_cost)
