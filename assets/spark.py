"""The ``spark`` resource: one Spark session per run, started on first use, then stopped.

Bound in every code location; with ``engine duckdb`` no asset asks for a session, so
nothing starts (and pyspark is never imported). With ``engine spark`` the first tag or
segment step of a run starts the session from the settings (``local[2]``,
``SPARK_LOCAL_IP=127.0.0.1`` on one machine; ``KEQUN_SPARK_MASTER`` in production), every
later step of the run (in-process executor) reuses it, and it is stopped when the run ends.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from app.context import KequnContext

SPARK_RESOURCE = "spark"


class SparkResource(dg.ConfigurableResource):
    """The run's Spark session (see the module docstring)."""

    _session: Any = PrivateAttr(default=None)
    _kequn: Any = PrivateAttr(default=None)

    def for_context(self, kequn: KequnContext) -> SparkResource:
        """Remember the settings the session is started from; returns ``self``."""
        self._kequn = kequn
        return self

    def session(self) -> Any:
        """The run's SparkSession, started on the first call (a session already active in
        this process, e.g. a test's shared one, is used and left running)."""
        if self._session is None:
            from pyspark import SparkContext
            from pyspark.sql import SparkSession

            from spark_engine.session import start_session

            # a session another owner started in this process (any thread): use, never stop
            if SparkContext._active_spark_context is not None:
                return SparkSession.builder.getOrCreate()
            kequn = self._kequn or KequnContext()
            self._session = start_session(kequn.settings, "kequn-dagster")
        return self._session

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Stop the session if this run started one."""
        if self._session is not None:
            from spark_engine.session import stop_session

            stop_session(self._session)
            self._session = None


def spark_keys(spark: bool) -> set[str]:
    """The resource keys an asset needs for the engine: ``{'spark'}`` on Spark, none else
    (so definitions built for DuckDB never ask for the resource)."""
    return {SPARK_RESOURCE} if spark else set()


def session_of(context: dg.AssetExecutionContext, kequn: KequnContext) -> Any:
    """What gives the run's Spark session (None when the asset runs on DuckDB)."""
    resource = getattr(context.resources, SPARK_RESOURCE, None)
    return resource.for_context(kequn).session if resource is not None else None
