"""What every kequn asset shares: daily partitions, the DuckDB pool and the resources.

Conventions (DESIGN §9): asset keys ``raw/<table>``, ``tags/<name>``,
``segments/<name>``, ``sync/<name>``; partitions are business days in
Asia/Shanghai; every asset or check that touches the DuckDB warehouse runs in the
``duckdb`` pool (limit 1, set in ``dagster.yaml``) because DuckDB allows one writer
process per file.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from kequn.settings import BUSINESS_TIMEZONE

PARTITION_START = "2024-01-01"
DUCKDB_POOL = "duckdb"

DAILY = dg.DailyPartitionsDefinition(start_date=PARTITION_START, timezone=BUSINESS_TIMEZONE)


def as_of_day(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext,
) -> date:
    """The business day (as-of D) of the partition being materialised."""
    return date.fromisoformat(context.partition_key)


def serving_kind(url: str) -> str:
    """The Dagster kind of the serving database at ``url``: ``postgres`` or ``sqlite``."""
    return "postgres" if url.startswith("postgres") else "sqlite"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (DESIGN §1)."""

    path: str

    def connect(self, *, read_only: bool = False):
        """A DuckDB connection; close it when done (``with resource.connect() as con``)."""
        from kequn.warehouse import connect

        return connect(self.path, read_only=read_only)


class ServingResource(dg.ConfigurableResource):
    """The serving (operational) database: ``sqlite:///path`` or ``postgresql://...``."""

    url: str

    def connect(self):
        """An open serving-database handle with its schema migrated."""
        from serving.db import connect

        return connect(self.url)
