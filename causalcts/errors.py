"""Errors and warnings raised by causalcts.

Every error a caller can trigger with bad input is a :class:`CausalCTSError`,
a subclass of :class:`ValueError`, and its message names the column, the rows
or the option at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class CausalCTSError(ValueError):
    """Base class of every input error raised by causalcts."""


class MissingColumnError(CausalCTSError):
    """A column the caller named (or the schema needs) is not in the data."""


class DataFileError(CausalCTSError):
    """A data file that does not exist or is not CSV or Parquet."""


class DuplicateKeyError(CausalCTSError):
    """Two or more rows share the same (entity, time) pair."""


class NonNumericError(CausalCTSError):
    """A column that must be numeric holds values that are not numbers."""


class MissingValueError(CausalCTSError):
    """A used column holds NaN or infinite values."""


class RangeError(CausalCTSError):
    """Values outside their allowed range (shares outside [0, 1], negative counts)."""


class EmptyPanelError(CausalCTSError):
    """The data has no rows, or too few entities to form a panel."""


class TooFewPeriodsError(CausalCTSError):
    """Not enough periods for the requested lags or transformation."""


class IrregularTimeError(CausalCTSError):
    """Dates whose period length cannot be inferred; pass ``freq=``."""


class CollinearityError(CausalCTSError):
    """A regressor is constant or a perfect linear combination of others."""


class SpecificationError(CausalCTSError):
    """A formula, option or keyword argument that causalcts cannot use."""


class TooFewClustersError(CausalCTSError):
    """Fewer than two clusters for cluster-robust or wild-bootstrap inference."""


class TreatmentError(CausalCTSError):
    """A treatment that cannot define the design: it never varies, switches off, or has no valid onset."""


class NoControlGroupError(CausalCTSError):
    """A rollout design without the comparison units it needs (no never-treated teams for control="never")."""


class CohortNotConstantError(CausalCTSError):
    """An onset-cohort column that changes within a team; a team has one onset period."""


class NoTreatmentVariationError(CausalCTSError):
    """A treatment that never varies (or varies only across teams or only across periods)."""


class EstimationError(CausalCTSError):
    """An estimator found no valid estimate on these data (e.g. an iterated correction that diverges)."""


class DataWarning(UserWarning):
    """Rows were dropped or data was altered; the message says how many and why."""


class ConvergenceWarning(UserWarning):
    """A sampler or optimiser did not converge (divergences, R-hat, ESS)."""


class InstrumentWarning(UserWarning):
    """Instrument count or weighting-matrix trouble in GMM estimation."""


def describe_rows(index: Iterable[Any], limit: int = 5) -> str:
    """Return a short, readable list of row labels: ``rows 3, 7, 9 (and 12 more)``."""
    rows = list(index)
    shown = ", ".join(repr(r) if isinstance(r, str) else str(r) for r in rows[:limit])
    more = f" (and {len(rows) - limit} more)" if len(rows) > limit else ""
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {shown}{more}"


def check_option(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise :class:`SpecificationError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise SpecificationError(f"{name}={value!r} is not supported; choose one of {options}.")
