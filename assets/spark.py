"""The ``spark`` resource: one Spark session per run, started on first use, then stopped.

Bound in every code location; with ``engine duckdb`` no asset asks for a session, so
nothing starts (and pyspark is never imported). With ``engine spark`` the first tag or
segment step of a run starts the session from the settings (``local[2]``,
``SPARK_LOCAL_IP=127.0.0.1`` on one machine; ``KEQUN_SPARK_MASTER`` in production), every
later step of the run (in-process executor) reuses it, and it is stopped when the run ends.
"""

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from app.context import KequnContext
from assets.common import Kequn

SPARK_RESOURCE = "spark"


class SparkResource(dg.ConfigurableResource):
    """The run's Spark session (see the module docstring)."""

    _session: Any = PrivateAttr(default=None)
    _kequn: Any = PrivateAttr(default=None)

    def for_context(self, kequn: KequnContext) -> "SparkResource":
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



Body = Callable[..., Any]


def on_engine(body: Body, *, spark: bool) -> Body:
    """The asset function for ``body(context, kequn, session)`` (a generator): with the
    ``spark`` resource when the engine is Spark, without it (so definitions built for DuckDB
    never need the resource) otherwise."""
    if spark:
        def with_spark(context: dg.AssetExecutionContext, kequn: Kequn,
                       spark: SparkResource) -> Iterator[Any]:
            yield from body(context, kequn, spark.for_context(kequn).session)
        return with_spark

    def on_duckdb(context: dg.AssetExecutionContext, kequn: Kequn) -> Iterator[Any]:
        yield from body(context, kequn, None)
    return on_duckdb


def on_engine_with_config(body: Body, config_type: type[dg.Config], *, spark: bool) -> Body:
    """Like :func:`on_engine` for a segment asset: ``body(context, kequn, config, session)``
    returning its result, ``config`` of ``config_type``."""
    if spark:
        def with_spark(context: dg.AssetExecutionContext, kequn: Kequn,
                       config: config_type, spark: SparkResource  # type: ignore[valid-type]
                       ) -> dg.MaterializeResult:
            return body(context, kequn, config, spark.for_context(kequn).session)
        return with_spark

    def on_duckdb(context: dg.AssetExecutionContext, kequn: Kequn,
                  config: config_type) -> dg.MaterializeResult:  # type: ignore[valid-type]
        return body(context, kequn, config, None)
    return on_duckdb
