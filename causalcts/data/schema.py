"""The weekly team telemetry schema.

One row per team and week. Counts are non-negative; ``ai_share`` is the share
of the team's developers who used an AI coding tool that week (0 to 1);
``dev_cost`` is the team's developer cost for the week in currency units.
"""

from __future__ import annotations

#: Column -> description, in the order the simulator writes them.
TELEMETRY_SCHEMA: dict[str, str] = {
    "team": "team identifier (entity)",
    "week": "week index (time)",
    "developers": "developers on the team that week (count)",
    "crs_merged": "code reviews merged that week (count)",
    "deployments": "deployments to production that week (count)",
    "rollbacks": "deployments rolled back that week (count)",
    "interventions": "manual interventions in deployments that week (count)",
    "pages": "pages to the team's on-call builders that week (count)",
    "oncall_builders": "builders on call that week (count)",
    "ai_share": "share of developers who used an AI coding tool that week (0 to 1)",
    "dev_cost": "developer cost of the team that week (currency)",
}

#: Columns that must be non-negative counts.
COUNT_COLUMNS: tuple[str, ...] = (
    "developers",
    "crs_merged",
    "deployments",
    "rollbacks",
    "interventions",
    "pages",
    "oncall_builders",
)

#: Columns that must be non-negative (counts and money).
NONNEGATIVE_COLUMNS: tuple[str, ...] = (*COUNT_COLUMNS, "dev_cost")

#: Columns that are shares in [0, 1].
SHARE_COLUMNS: tuple[str, ...] = ("ai_share",)

#: Numeric columns of the schema (everything but the keys).
NUMERIC_SCHEMA_COLUMNS: tuple[str, ...] = tuple(c for c in TELEMETRY_SCHEMA if c not in ("team", "week"))
