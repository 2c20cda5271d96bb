"""Starting and stopping a Spark session for one run, from the settings.

Local mode for the demo and CI (``local[2]``, ``SPARK_LOCAL_IP=127.0.0.1``, a set driver
memory, few shuffle partitions, no UI); a production deployment sets
``KEQUN_SPARK_MASTER`` to its cluster. Timestamps are read and written without a time
zone (``TIMESTAMP_NTZ``, session zone UTC): raw timestamps are naive local times
(architecture §2), as in DuckDB. Cold start is 8-12 s; share one session per run.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

from kequn.errors import ExecutionError
from kequn.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "pip install -e '.[spark]' (pyspark) and a Java 17 runtime " \
               "(apt-get install openjdk-17-jre-headless)"


def spark_config(settings: Settings) -> dict[str, str]:
    """The session configuration kequn sets (see the module docstring)."""
    return {
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.timestampType": "TIMESTAMP_NTZ",
        "spark.sql.parquet.mergeSchema": "true",
        "spark.sql.sources.partitionColumnTypeInference.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
        "spark.driver.extraJavaOptions": "-Dlog4j2.level=ERROR",
    }


def unavailable_reason() -> str | None:
    """Why Spark cannot start here (no pyspark, no java), or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return f"pyspark is not installed: {INSTALL_HINT}"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return f"no Java runtime on the PATH: {INSTALL_HINT}"
    return None


def start_session(settings: Settings, app_name: str = "kequn") -> SparkSession:
    """A Spark session configured from ``settings`` (stop it with :func:`stop_session`).

    Raises ExecutionError with the install hint when pyspark or Java is missing.
    """
    reason = unavailable_reason()
    if reason:
        raise ExecutionError(f"cannot start Spark: {reason}")
    if settings.spark_master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder: Any = SparkSession.builder.master(settings.spark_master).appName(app_name)
    for key, value in spark_config(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def stop_session(spark: SparkSession) -> None:
    """Stop ``spark`` (its JVM work ends; the Python gateway is reused by the next start)."""
    spark.stop()
