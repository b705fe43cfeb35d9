"""Rollout spec files: the TOML that tells ``causalcts analyze`` where the data are and what to estimate.

A spec describes one natural experiment (a tool rolled out across teams over weeks)::

    name = "AI coding assistant rollout, 2025"
    data = "rollout.csv"                 # CSV or Parquet, relative to the spec file
    entity = "team"
    time = "week"                        # integers, or dates (ISO text such as "2025-01-06")
    treatment = "ai_share"               # a share of developers in [0, 1]
    outcomes = ["cr_velocity", "deploys_per_builder"]
    controls = ["rollback_rate", "interventions_per_deploy"]

Outcome and control names may be columns of the data or metrics that :data:`causalcts.metrics.DERIVED`
computes from raw telemetry columns (``cr_velocity`` from ``crs_merged`` and ``developers``, ...).
Every optional key, its type and its default are in :data:`SCHEMA` (and in the table printed by
:func:`schema_table`). Several experiments go in one file as ``[[experiments]]`` tables; keys at the top
level are then defaults every experiment inherits::

    outcomes = ["cr_velocity"]
    [[experiments]]
    name = "Rollout A"
    data = "a.csv"
    [[experiments]]
    name = "Rollout B"
    data = "b.parquet"

:func:`load_spec` checks the file against the schema (unknown keys, missing keys, wrong types, values out
of range); :func:`load_data` then checks the data against the spec (missing files and columns, a share
outside [0, 1], too few weeks). Each problem raises a :class:`~causalcts.errors.CausalCTSError` whose
message names the key or the column.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from causalcts import metrics
from causalcts.data.panel import Panel
from causalcts.errors import (
    CausalCTSError,
    DataFileError,
    MissingColumnError,
    NonNumericError,
    RangeError,
    SpecificationError,
    TooFewPeriodsError,
    describe_rows,
)

__all__ = ["MIN_WEEKS", "SCHEMA", "RolloutData", "RolloutSpec", "load_data", "load_spec", "parse_spec", "schema_table"]

#: Fewest distinct periods an analysis accepts: the lag and the first difference use two, the AR(2) test of
#: difference GMM needs three differenced periods, and the lead (exogeneity) test one more.
MIN_WEEKS = 6


@dataclass(frozen=True)
class Key:
    """One key of the spec schema: its kind (``str``, ``int``, ``float``, ``bool``, ``list[str]``, ``pair``),
    whether it is required, its default and what it means."""

    kind: str
    required: bool
    default: Any
    doc: str


#: The spec schema: key -> :class:`Key`. ``experiments`` (a list of tables) is allowed at the top level only.
SCHEMA: Mapping[str, Key] = MappingProxyType(
    {
        "name": Key("str", True, None, "title of the experiment, shown on the report"),
        "data": Key("str", True, None, "CSV or Parquet file, relative to the spec file"),
        "entity": Key("str", True, None, "column of the team identifier"),
        "time": Key("str", True, None, "column of the week: integers or dates (ISO text)"),
        "treatment": Key("str", True, None, "column of the adoption share, in [0, 1]"),
        "outcomes": Key("list[str]", True, None, "outcomes: columns or derived metric names"),
        "controls": Key("list[str]", False, (), "control variables: columns or derived metric names"),
        "cluster": Key("str", False, None, "cluster column of the event study (default: the entity)"),
        "window": Key("pair", False, (6, 6), "event-study weeks before and after onset; end points binned"),
        "methods": Key(
            "list[str]",
            False,
            None,
            "registry methods to fit (default: within, bias-corrected, diff-gmm, bayes, and ml when T <= 12 "
            "or the panel is complete)",
        ),
        "onset_threshold": Key("float", False, 0.5, "share at which a team counts as treated (onset cohorts)"),
        "cost_per_developer_week": Key(
            "float", False, None, "money per developer-week (default: the cost_column, if the data have it)"
        ),
        "seed": Key("int", False, 1, "seed of the Bayesian sampler, the HonestDiD draws and the savings draws"),
        "level": Key("float", False, 0.95, "level of every interval"),
        "bayes_draws": Key("int", False, 1000, "posterior draws per chain of the Bayesian fit"),
        "bayes_tune": Key("int", False, 1000, "warm-up draws per chain of the Bayesian fit"),
        "bayes_chains": Key(
            "int", False, 4, "chains of the Bayesian fit (4 x 1000 draws: R-hat and ESS pass on 60 teams x 30 weeks)"
        ),
        "gmm_max_lag": Key("int", False, 4, "last lag of the outcome used as a GMM instrument (from lag 2)"),
        "savings_outcome": Key(
            "str",
            False,
            None,
            "outcome the savings are computed from (default: the velocity in the cts_unit, deploys_per_builder or "
            "cr_velocity, if an outcome; else the first outcome)",
        ),
        "developers": Key("str", False, "developers", "column of developers per team-week (developer-weeks)"),
        "cost_column": Key(
            "str", False, "dev_cost", "column of developer cost per team-week (CTS-SW numerator, money saved)"
        ),
        "deployments_column": Key("str", False, "deployments", "column of deployments per team-week"),
        "crs_column": Key("str", False, "crs_merged", "column of code reviews (CRs) merged per team-week"),
        "cts_unit": Key(
            "str",
            False,
            "deployments",
            "unit CTS-SW is per: deployments or crs_merged (the columns above), or another count column",
        ),
        "freq": Key("str", False, None, "period of date times: W, W-MON .. W-SUN, D, M, Q, Y (default: inferred)"),
        "weeks_per_year": Key("float", False, 52.0, "working weeks in an engineering-year"),
        "savings_draws": Key("int", False, 2000, "draws of the parameters carried into the savings intervals"),
    }
)

_KIND_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list[str]": "a list of strings",
    "pair": "a list of two non-negative integers",
}


def schema_table() -> str:
    """The schema as a Markdown table (key, type, required, default, meaning), then the raw telemetry columns.

    Examples
    --------
    >>> from causalcts.workflows.spec import schema_table
    >>> schema_table().splitlines()[2].startswith("| name | a string | yes")
    True
    """
    rows = ["| key | type | required | default | meaning |", "|---|---|---|---|---|"]
    for name, k in SCHEMA.items():
        default = "" if k.required else ("(see meaning)" if k.default is None else repr(k.default))
        rows.append(f"| {name} | {_KIND_WORDS[k.kind]} | {'yes' if k.required else 'no'} | {default} | {k.doc} |")
    rows += [
        "",
        "Raw telemetry columns the derived metrics are computed from (one row per team-week; a spec key names",
        "a column that is called differently in the data):",
        "",
        "| column | spec key | meaning |",
        "|---|---|---|",
    ]
    keys = {v: k for k, v in _COLUMN_KEYS.items()}
    for col, meaning in metrics.RAW_COLUMNS.items():
        rows.append(f"| {col} | {keys.get(col, '')} | {meaning} |")
    return "\n".join(rows)


@dataclass(frozen=True)
class RolloutSpec:
    """One validated experiment of a spec file (every key of :data:`SCHEMA`, defaults filled in).

    ``source`` is the spec file (None when built from a dict) and ``data_path`` the data file it names,
    resolved against the spec's folder.
    """

    name: str
    data: str
    entity: str
    time: str
    treatment: str
    outcomes: tuple[str, ...]
    controls: tuple[str, ...] = ()
    cluster: str | None = None
    window: tuple[int, int] = (6, 6)
    methods: tuple[str, ...] | None = None
    onset_threshold: float = 0.5
    cost_per_developer_week: float | None = None
    seed: int = 1
    level: float = 0.95
    bayes_draws: int = 1000
    bayes_tune: int = 1000
    bayes_chains: int = 4
    gmm_max_lag: int = 4
    savings_outcome: str | None = None
    developers: str = "developers"
    cost_column: str = "dev_cost"
    deployments_column: str = "deployments"
    crs_column: str = "crs_merged"
    cts_unit: str = "deployments"
    freq: str | None = None
    weeks_per_year: float = 52.0
    savings_draws: int = 2000
    source: str | None = field(default=None, compare=False)
    data_path: str = ""

    @property
    def cluster_column(self) -> str:
        """The event study's cluster column: ``cluster`` or, by default, the entity."""
        return self.cluster or self.entity

    @property
    def savings_from(self) -> str:
        """The outcome the savings are computed from: ``savings_outcome``, else the velocity in the unit CTS-SW
        is measured in (``deploys_per_builder`` for ``cts_unit = "deployments"``, ``cr_velocity`` for
        ``"crs_merged"``) when it is an outcome, else the first outcome."""
        if self.savings_outcome:
            return self.savings_outcome
        velocity = {"deployments": "deploys_per_builder", "crs_merged": "cr_velocity"}.get(self.cts_unit)
        return velocity if velocity in self.outcomes else self.outcomes[0]

    @property
    def raw_columns(self) -> dict[str, str]:
        """Default raw telemetry column name -> the column of the data holding it (the spec's column keys)."""
        return {
            "developers": self.developers,
            "dev_cost": self.cost_column,
            "deployments": self.deployments_column,
            "crs_merged": self.crs_column,
        }

    @property
    def cts_unit_column(self) -> str:
        """The column of the data counting the units CTS-SW is per."""
        return self.raw_columns.get(self.cts_unit, self.cts_unit)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-ready values (every key of the schema, and ``source``, ``data_path``)."""
        out: dict[str, Any] = {}
        for k in (*SCHEMA, "source", "data_path"):
            v = getattr(self, k)
            out[k] = list(v) if isinstance(v, tuple) else v
        return out


def _where(source: str | None, index: int | None) -> str:
    place = f"spec {source}" if source else "the spec"
    return place + (f", experiment {index + 1}" if index is not None else "")


def _check_value(key: str, value: Any, where: str) -> Any:
    """The value of ``key`` converted to its schema kind; a wrong type or range raises naming the key."""
    kind = SCHEMA[key].kind
    bad = SpecificationError(
        f"In {where}: key {key!r} must be {_KIND_WORDS[kind]}, not {type(value).__name__} {value!r}."
    )
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise bad
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        return float(value)
    if kind == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad
        if len(set(value)) < len(value):
            raise SpecificationError(f"In {where}: key {key!r} lists a name twice: {value}.")
        return tuple(value)
    if kind == "pair":
        ok = isinstance(value, list) and len(value) == 2
        if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            raise bad
        return tuple(value)
    raise AssertionError(kind)  # pragma: no cover - every kind of SCHEMA is handled above


def _check_ranges(values: dict[str, Any], where: str) -> None:
    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise RangeError(f"In {where}: key {key!r} = {values[key]!r} {what}.")

    need(0 < values["onset_threshold"] <= 1, "onset_threshold", "must be a share in (0, 1]")
    need(0 < values["level"] < 1, "level", "must lie strictly between 0 and 1 (e.g. 0.95)")
    need(values["seed"] >= 0, "seed", "must be a non-negative integer")
    for k, lo in (("bayes_draws", 50), ("bayes_tune", 50), ("bayes_chains", 1), ("savings_draws", 200)):
        need(values[k] >= lo, k, f"must be at least {lo}")
    need(values["gmm_max_lag"] >= 2, "gmm_max_lag", "must be 2 or more (lag 2 is the first valid instrument)")
    need(values["weeks_per_year"] > 0, "weeks_per_year", "must be positive")
    if values["cost_per_developer_week"] is not None:
        need(values["cost_per_developer_week"] > 0, "cost_per_developer_week", "must be positive")
    need(values["window"][0] >= 2 and values["window"][1] >= 1, "window", "needs at least 2 weeks before and 1 after")
    need(len(values["outcomes"]) >= 1, "outcomes", "must name at least one outcome")
    clash = set(values["outcomes"]) & set(values["controls"])
    if clash:
        raise SpecificationError(f"In {where}: {sorted(clash)} are listed both in 'outcomes' and in 'controls'.")
    if values["treatment"] in (*values["outcomes"], *values["controls"]):
        raise SpecificationError(f"In {where}: the treatment {values['treatment']!r} is also an outcome or control.")
    if values["savings_outcome"] is not None and values["savings_outcome"] not in values["outcomes"]:
        raise SpecificationError(
            f"In {where}: key 'savings_outcome' = {values['savings_outcome']!r} is not one of the outcomes "
            f"{list(values['outcomes'])}."
        )


def _build(table: Mapping[str, Any], source: str | None, base: Path, index: int | None) -> RolloutSpec:
    where = _where(source, index)
    unknown = [k for k in table if k not in SCHEMA]
    if unknown:
        hints = [difflib.get_close_matches(k, list(SCHEMA), n=1) for k in unknown]
        hint = "; ".join(f"did you mean {h[0]!r} for {k!r}?" for k, h in zip(unknown, hints) if h)
        raise SpecificationError(
            f"In {where}: unknown key(s) {unknown}" + (f" ({hint})" if hint else "") + f"; allowed keys are "
            f"{list(SCHEMA)}."
        )
    missing = [k for k, spec in SCHEMA.items() if spec.required and k not in table]
    if missing:
        raise SpecificationError(f"In {where}: required key(s) {missing} are missing.")
    values = {k: (SCHEMA[k].default if k not in table else _check_value(k, table[k], where)) for k in SCHEMA}
    _check_ranges(values, where)
    if values["methods"] is not None:
        from causalcts import registry

        unknown_m = [m for m in values["methods"] if m not in registry.names()]
        if unknown_m:
            raise SpecificationError(
                f"In {where}: key 'methods' names {unknown_m}, which are not registered methods; "
                f"choose from {list(registry.names())}."
            )
    path = Path(values["data"])
    data_path = path if path.is_absolute() else base / path
    return RolloutSpec(**values, source=source, data_path=str(data_path))


def parse_spec(table: Mapping[str, Any], *, source: str | None = None, base: str | Path = ".") -> list[RolloutSpec]:
    """Validate a parsed spec (a dict, as ``tomllib`` gives it) and return its experiments.

    Parameters
    ----------
    table
        The spec's keys; ``experiments`` (a list of tables) lists several experiments, the other top-level
        keys being defaults they share.
    source
        Name of the spec file, for messages.
    base
        Folder that relative data paths are resolved against.

    Returns
    -------
    list of RolloutSpec
        One per experiment, in file order.

    Raises
    ------
    causalcts.errors.SpecificationError
        Unknown or missing keys, wrong types, repeated experiment names.
    causalcts.errors.RangeError
        Values out of range (a threshold outside (0, 1], a negative seed, ...).

    Examples
    --------
    >>> from causalcts.workflows.spec import parse_spec
    >>> spec, = parse_spec({"name": "A", "data": "a.csv", "entity": "team", "time": "week",
    ...                     "treatment": "ai_share", "outcomes": ["cr_velocity"]})
    >>> spec.onset_threshold, spec.window, spec.cluster_column
    (0.5, (6, 6), 'team')
    >>> parse_spec({"name": "A", "seeds": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    causalcts.errors.SpecificationError: In the spec: unknown key(s) ['seeds'] (did you mean 'seed' for 'seeds'?); ...
    """
    if not isinstance(table, Mapping):
        raise SpecificationError(f"A spec must be a table of keys, not {type(table).__name__}.")
    base = Path(base)
    if "experiments" not in table:
        return [_build(table, source, base, None)]
    experiments = table["experiments"]
    if not isinstance(experiments, list) or not experiments or not all(isinstance(e, Mapping) for e in experiments):
        raise SpecificationError(
            f"In {_where(source, None)}: key 'experiments' must be a non-empty list of tables ([[experiments]])."
        )
    shared = {k: v for k, v in table.items() if k != "experiments"}
    specs = [_build({**shared, **e}, source, base, i) for i, e in enumerate(experiments)]
    _check_unique_names(specs)
    return specs


def _check_unique_names(specs: list[RolloutSpec]) -> None:
    names = [s.name for s in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SpecificationError(f"Experiment names must be unique; {repeated} appear more than once.")


def load_spec(*paths: str | Path) -> list[RolloutSpec]:
    """Read and validate one or more TOML spec files; return every experiment they hold.

    Raises
    ------
    causalcts.errors.DataFileError
        A spec file that does not exist.
    causalcts.errors.SpecificationError
        TOML that does not parse (the message has the line), or a spec that breaks the schema.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from causalcts.workflows.spec import load_spec
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "s.toml").write_text('name = "A"\\ndata = "a.csv"\\nentity = "team"\\ntime = "week"\\n'
    ...                                    'treatment = "ai_share"\\noutcomes = ["cr_velocity"]\\nseed = 7\\n')
    >>> spec, = load_spec(folder / "s.toml")
    >>> spec.seed, spec.data_path == str(folder / "a.csv")
    (7, True)
    """
    if not paths:
        raise SpecificationError("Give at least one spec file.")
    specs: list[RolloutSpec] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DataFileError(f"No such spec file: {path}")
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise SpecificationError(f"Spec {path} is not valid TOML: {err}.") from None
        specs.extend(parse_spec(table, source=str(path), base=path.parent))
    _check_unique_names(specs)
    return specs


# ---------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class RolloutData:
    """The data of one experiment, checked against its spec.

    ``frame`` holds the used columns (entity, time, treatment, outcomes, controls, cluster, developers and
    the cost column when present), sorted by entity and time, with derived metrics computed and the time column
    replaced by whole periods counted from 0 (so dates and week numbers work alike; a missing week is a gap).
    ``time_labels`` maps each period back to its time value as given. The file is only read.
    ``derived`` maps each metric computed here to the raw columns it came from.
    """

    spec: RolloutSpec
    frame: pd.DataFrame
    raw_columns: tuple[str, ...]
    derived: Mapping[str, tuple[str, ...]]
    time_labels: Mapping[int, str]


def _read_frame(spec: RolloutSpec) -> pd.DataFrame:
    path = Path(spec.data_path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataFileError(f"Key 'data' = {spec.data!r}: use a .csv or .parquet file ({_where(spec.source, None)}).")
    if not path.is_file():
        raise DataFileError(f"Key 'data' = {spec.data!r}: no such file {path} ({_where(spec.source, None)}).")
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise DataFileError(f"Key 'data' = {spec.data!r}: cannot read {path}: {err}") from None


#: Spec key naming each raw column.
_COLUMN_KEYS = {
    "developers": "developers",
    "cost_column": "dev_cost",
    "deployments_column": "deployments",
    "crs_column": "crs_merged",
}


def _check_columns(spec: RolloutSpec, frame: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Every named column is in the data or derivable; return the metrics to derive and their raw columns."""
    cols = list(frame.columns)
    for key in ("entity", "time", "treatment", "cluster"):
        col = getattr(spec, key)
        if col is not None and col not in frame.columns:
            raise MissingColumnError(f"Key {key!r} = {col!r} is not a column of {spec.data}; columns are {cols}.")
    derived: dict[str, tuple[str, ...]] = {}
    for key in ("outcomes", "controls"):
        for name in getattr(spec, key):
            if name in frame.columns:
                continue
            if name not in metrics.DERIVED:
                raise MissingColumnError(
                    f"Key {key!r} names {name!r}, which is neither a column of {spec.data} nor a derived metric "
                    f"({list(metrics.DERIVED)}); columns are {cols}."
                )
            canon = ("dev_cost", spec.cts_unit) if name in ("cts_sw", "log_cts") else metrics.DERIVED[name][1]
            raw = tuple(spec.raw_columns.get(c, c) for c in canon)
            absent = [c for c in raw if c not in frame.columns]
            if absent:
                keys = {v: k for k, v in _COLUMN_KEYS.items()}
                named = [f"{keys[c]!r}" for c in canon if spec.raw_columns.get(c, c) in absent and c in keys]
                hint = f" (if the data call it differently, name the column with the key(s) {', '.join(named)})"
                raise MissingColumnError(
                    f"Key {key!r} names the metric {name!r} ({metrics.DERIVED[name][2]}), which needs the raw "
                    f"column(s) {list(raw)}; {absent} {'is' if len(absent) == 1 else 'are'} not in {spec.data}"
                    + (hint if named else "")
                    + f". Columns are {cols}."
                )
            derived[name] = tuple(raw)
    return derived


def _check_share(spec: RolloutSpec, frame: pd.DataFrame) -> None:
    col = spec.treatment
    s = pd.to_numeric(frame[col], errors="coerce")
    text = s.isna() & frame[col].notna()
    if text.any():
        raise NonNumericError(
            f"Key 'treatment' = {col!r} must be a numeric share; {describe_rows(frame.index[text])} hold "
            f"{list(pd.unique(frame.loc[text, col]))[:3]}."
        )
    out = (s < 0) | (s > 1)
    if out.any():
        raise RangeError(
            f"Key 'treatment' = {col!r} must be a share in [0, 1]; {describe_rows(frame.index[out])} hold "
            f"{sorted(s[out].unique().tolist())[:3]} (a percentage? divide by 100)."
        )
    if s.notna().sum() == 0 or s.nunique() < 2:
        raise RangeError(f"Key 'treatment' = {col!r} never varies: no effect of adoption can be estimated.")


def load_data(spec: RolloutSpec) -> RolloutData:
    """Read an experiment's data, check it against the spec and derive the metrics it names.

    Raises
    ------
    causalcts.errors.DataFileError
        The data file is missing or not CSV or Parquet.
    causalcts.errors.MissingColumnError
        A key names a column that is neither in the data nor derivable (the message names the key).
    causalcts.errors.RangeError
        The treatment is not a share in [0, 1], or never varies.
    causalcts.errors.TooFewPeriodsError
        Fewer than :data:`MIN_WEEKS` distinct weeks.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import causalcts
    >>> from causalcts.workflows.spec import load_data, parse_spec
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> causalcts.simulate(20, 8, seed=1).data.to_csv(folder / "a.csv", index=False)
    >>> spec, = parse_spec({"name": "A", "data": "a.csv", "entity": "team", "time": "week",
    ...                     "treatment": "ai_share", "outcomes": ["cr_velocity"]}, base=folder)
    >>> d = load_data(spec)
    >>> d.frame.shape, int(d.frame["week"].min()), int(d.frame["week"].max())
    ((160, 6), 0, 7)
    """
    raw = _read_frame(spec)
    derived = _check_columns(spec, raw)
    _check_share(spec, raw)
    try:
        keys = Panel(raw[[spec.entity, spec.time]], entity=spec.entity, time=spec.time, freq=spec.freq)
    except CausalCTSError as err:
        raise type(err)(f"Keys 'entity' = {spec.entity!r} and 'time' = {spec.time!r}: {err}") from None
    periods = keys.period_of(raw[spec.time])
    n_weeks = len(np.unique(periods))
    if n_weeks < MIN_WEEKS:
        raise TooFewPeriodsError(
            f"Key 'time' = {spec.time!r}: the data hold {n_weeks} distinct weeks; an analysis needs at least "
            f"{MIN_WEEKS} (the lag, the first difference and the AR(2) test use them)."
        )
    names = spec.raw_columns
    with_metrics = (
        metrics.derive(
            raw,
            list(derived),
            unit=spec.cts_unit,
            cost=names["dev_cost"],
            developers=names["developers"],
            deployments=names["deployments"],
            crs_merged=names["crs_merged"],
        )
        if derived
        else raw
    )
    extras = [c for c in (spec.developers, spec.cost_column) if c in raw.columns]
    keep = list(
        dict.fromkeys(
            [spec.entity, spec.time, spec.treatment, *spec.outcomes, *spec.controls, spec.cluster_column, *extras]
        )
    )
    frame = with_metrics[keep].copy()
    period = (periods - periods.min()).astype(np.int64)
    labels = dict(zip(period.tolist(), raw[spec.time].astype(str).tolist()))
    frame[spec.time] = period
    frame = frame.sort_values([spec.entity, spec.time], kind="stable").reset_index(drop=True)
    return RolloutData(
        spec=spec,
        frame=frame,
        raw_columns=tuple(raw.columns),
        derived=MappingProxyType(derived),
        time_labels=MappingProxyType(labels),
    )
