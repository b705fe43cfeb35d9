"""The data layer: validated panels and the telemetry schema. Imports nothing else from causalcts
but :mod:`causalcts.errors`."""

from causalcts.data.panel import Panel, check_full_rank, lag_name
from causalcts.data.schema import COUNT_COLUMNS, NONNEGATIVE_COLUMNS, SHARE_COLUMNS, TELEMETRY_SCHEMA

__all__ = [
    "COUNT_COLUMNS",
    "NONNEGATIVE_COLUMNS",
    "Panel",
    "SHARE_COLUMNS",
    "TELEMETRY_SCHEMA",
    "check_full_rank",
    "lag_name",
]
