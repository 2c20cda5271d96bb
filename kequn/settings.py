"""Every setting of kequn, with its environment variable, documented once, here.

A :class:`Settings` is resolved once per process (the command line builds it from its
global options and the environment; the Dagster code location from the environment) and
handed down: no engine reads the environment itself. ``kequn settings`` prints them all
with their current values.

=========================== ============================ ==================================
setting                     environment variable         default
=========================== ============================ ==================================
project_dir                 KEQUN_PROJECT_DIR            ``sql/`` of the repository
data_dir                    KEQUN_DATA_DIR               ``data/`` of the repository
warehouse                   KEQUN_WAREHOUSE              ``<data_dir>/warehouse.duckdb``
serving_url                 KEQUN_SERVING_URL            ``sqlite:///<data_dir>/serving.sqlite``
dagster_home                DAGSTER_HOME                 ``<data_dir>/dagster_home``
raw_mode                    KEQUN_RAW_MODE               ``demo``
warehouse_wait_s            KEQUN_WAREHOUSE_WAIT_S       600
sync_lock_wait_s            KEQUN_SYNC_LOCK_WAIT_S       600
sandbox_timeout_s           KEQUN_SANDBOX_TIMEOUT_S      60
sandbox_memory_limit        KEQUN_SANDBOX_MEMORY_LIMIT   ``2GB``
sandbox_threads             KEQUN_SANDBOX_THREADS        2
import_max_bytes            KEQUN_IMPORT_MAX_BYTES       67108864 (64 MiB)
first_day                   KEQUN_FIRST_DAY              the demo's first built day, else 2024-01-01
alert_webhook_url           KEQUN_ALERT_WEBHOOK_URL      (empty: alerts off)
ui_url                      KEQUN_UI_URL                 ``http://127.0.0.1:3000``
retention_days              KEQUN_RETENTION_DAYS         90
user                        KEQUN_USER                   none (``--as USER``)
engine                      KEQUN_ENGINE                 ``duckdb`` (or ``spark``)
lake_dir                    KEQUN_LAKE_DIR               ``<data_dir>/lake``
spark_master                KEQUN_SPARK_MASTER           ``local[2]``
spark_driver_memory         KEQUN_SPARK_DRIVER_MEMORY    ``2g``
spark_shuffle_partitions    KEQUN_SPARK_SHUFFLE_PARTITIONS 8
=========================== ============================ ==================================

>>> s = Settings.from_env({"KEQUN_DATA_DIR": "/srv/kq", "KEQUN_SANDBOX_TIMEOUT_S": "5"})
>>> str(s.warehouse), s.serving_url, s.sandbox_timeout_s
('/srv/kq/warehouse.duckdb', 'sqlite:////srv/kq/serving.sqlite', 5.0)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

from kequn.days import BUSINESS_TIMEZONE
from kequn.errors import ValidationError

REPO_ROOT = Path(__file__).resolve().parents[1]
RAW_MODES = ("demo", "external")
ENGINES = ("duckdb", "spark")

__all__ = ["BUSINESS_TIMEZONE", "REPO_ROOT", "SETTINGS", "Setting", "Settings"]


@dataclass(frozen=True)
class Setting:
    """How one setting is read: its environment variable, its parser, default and meaning."""

    field: str
    env: str
    parse: Callable[[str], Any]
    default: Callable[[dict[str, Any]], Any]
    """The default, given the settings resolved before this one."""
    help: str


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise ValueError("must be positive")
        return value
    return parse


def _engine(text: str) -> str:
    if text not in ENGINES:
        raise ValueError(f"one of {', '.join(ENGINES)}")
    return text


def _raw_mode(text: str) -> str:
    if text not in RAW_MODES:
        raise ValueError(f"one of {', '.join(RAW_MODES)}")
    return text


SETTINGS: tuple[Setting, ...] = (
    Setting("project_dir", "KEQUN_PROJECT_DIR", Path, lambda s: REPO_ROOT / "sql",
            "Definitions folder: tags/, segments/, campaigns/."),
    Setting("data_dir", "KEQUN_DATA_DIR", Path, lambda s: REPO_ROOT / "data",
            "Generated data: warehouse, serving database, imports inbox, Dagster home."),
    Setting("warehouse", "KEQUN_WAREHOUSE", Path,
            lambda s: s["data_dir"] / "warehouse.duckdb", "The DuckDB warehouse file."),
    Setting("serving_url", "KEQUN_SERVING_URL", str,
            lambda s: f"sqlite:///{s['data_dir'] / 'serving.sqlite'}",
            "Serving database: sqlite:///PATH, or postgresql://... in production."),
    Setting("dagster_home", "DAGSTER_HOME", Path, lambda s: s["data_dir"] / "dagster_home",
            "Dagster instance folder (run history, schedules)."),
    Setting("raw_mode", "KEQUN_RAW_MODE", _raw_mode, lambda s: "demo",
            "demo: raw/* assets run the generator; external: raw/* are the lender's tables, "
            "never written."),
    Setting("warehouse_wait_s", "KEQUN_WAREHOUSE_WAIT_S", _positive(float), lambda s: 600.0,
            "Seconds to wait for the warehouse while another process holds its write lock."),
    Setting("sync_lock_wait_s", "KEQUN_SYNC_LOCK_WAIT_S", _positive(float), lambda s: 600.0,
            "Seconds a sync waits for another sync of the same segment."),
    Setting("sandbox_timeout_s", "KEQUN_SANDBOX_TIMEOUT_S", _positive(float), lambda s: 60.0,
            "Time limit of an analyst's SQL segment."),
    Setting("sandbox_memory_limit", "KEQUN_SANDBOX_MEMORY_LIMIT", str, lambda s: "2GB",
            "Memory limit of an analyst's SQL segment (DuckDB size, e.g. 2GB)."),
    Setting("sandbox_threads", "KEQUN_SANDBOX_THREADS", _positive(int), lambda s: 2,
            "Threads of an analyst's SQL segment."),
    Setting("import_max_bytes", "KEQUN_IMPORT_MAX_BYTES", _positive(int),
            lambda s: 64 * 1024 * 1024, "Largest uploaded file accepted for a file segment."),
    Setting("first_day", "KEQUN_FIRST_DAY", date.fromisoformat,
            lambda s: _recorded_first_day(s["data_dir"]),
            "First business day (YYYY-MM-DD): daily partitions start here."),
    Setting("alert_webhook_url", "KEQUN_ALERT_WEBHOOK_URL", str, lambda s: "",
            "Alerts (blocked sync, failed check, failed run) are POSTed here as JSON; "
            "empty: off."),
    Setting("ui_url", "KEQUN_UI_URL", str, lambda s: "http://127.0.0.1:3000",
            "Base address of the Dagster UI, for links in alerts."),
    Setting("retention_days", "KEQUN_RETENTION_DAYS", _positive(int), lambda s: 90,
            "Days of tag and segment snapshots kept (older ones are pruned unless a sync "
            "still refers to them)."),
    Setting("user", "KEQUN_USER", str, lambda s: "",
            "Who runs the command (--as USER): recorded in the audit log, checked for "
            "approvals."),
    Setting("engine", "KEQUN_ENGINE", _engine, lambda s: "duckdb",
            "Where tags and segments are computed: duckdb (the warehouse file) or spark (the "
            "lake, Parquet)."),
    Setting("lake_dir", "KEQUN_LAKE_DIR", Path, lambda s: s["data_dir"] / "lake",
            "The lake (engine spark): raw/<table>/, tags/customer_tags/as_of=D/, "
            "segments/members/segment=S/as_of=D/."),
    Setting("spark_master", "KEQUN_SPARK_MASTER", str, lambda s: "local[2]",
            "Spark master URL (local[2] on one machine; a cluster's URL in production)."),
    Setting("spark_driver_memory", "KEQUN_SPARK_DRIVER_MEMORY", str, lambda s: "2g",
            "Spark driver memory (the setting that matters in local mode; 8g at 1M customers)."),
    Setting("spark_shuffle_partitions", "KEQUN_SPARK_SHUFFLE_PARTITIONS", _positive(int),
            lambda s: 8, "spark.sql.shuffle.partitions (few on one machine)."),
)


FALLBACK_FIRST_DAY = date(2024, 1, 1)
FIRST_DAY_FILE = "first_day"
"""``<data_dir>/first_day``: the first business day ``kequn demo`` built (one ISO date)."""


def _recorded_first_day(data_dir: Path) -> date:
    """The first day the demo recorded under ``data_dir``, else :data:`FALLBACK_FIRST_DAY`."""
    try:
        return date.fromisoformat((data_dir / FIRST_DAY_FILE).read_text().strip())
    except (OSError, ValueError):
        return FALLBACK_FIRST_DAY


def resolve(env: Mapping[str, str], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting's value: ``given`` first, then ``env``, then the default.

    A bad environment value is a ValidationError naming the variable and the value.
    """
    unknown = set(given) - {s.field for s in SETTINGS}
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if given.get(setting.field) is not None:
            value = given[setting.field]
            values[setting.field] = Path(value) if isinstance(value, str) and \
                setting.parse is Path else value
            continue
        text = env.get(setting.env)
        if text is None or text == "":
            values[setting.field] = setting.default(values)
            continue
        try:
            values[setting.field] = setting.parse(text)
        except ValueError as exc:
            raise ValidationError(f"{setting.env}={text!r} is not valid: {exc}",
                                  hint=setting.help) from None
    return values


@dataclass(frozen=True)
class Settings:
    """Resolved paths, URLs, limits and time-outs for one run of kequn (see the table above).

    ``Settings(warehouse=...)`` takes the given values and reads the rest from the
    environment; :meth:`from_env` reads a given mapping instead.
    """

    project_dir: Path = None  # type: ignore[assignment]
    data_dir: Path = None  # type: ignore[assignment]
    warehouse: Path = None  # type: ignore[assignment]
    serving_url: str = None  # type: ignore[assignment]
    dagster_home: Path = None  # type: ignore[assignment]
    raw_mode: str = None  # type: ignore[assignment]
    warehouse_wait_s: float = None  # type: ignore[assignment]
    sync_lock_wait_s: float = None  # type: ignore[assignment]
    sandbox_timeout_s: float = None  # type: ignore[assignment]
    sandbox_memory_limit: str = None  # type: ignore[assignment]
    sandbox_threads: int = None  # type: ignore[assignment]
    import_max_bytes: int = None  # type: ignore[assignment]
    first_day: date = None  # type: ignore[assignment]
    alert_webhook_url: str = None  # type: ignore[assignment]
    ui_url: str = None  # type: ignore[assignment]
    retention_days: int = None  # type: ignore[assignment]
    user: str = None  # type: ignore[assignment]
    engine: str = None  # type: ignore[assignment]
    lake_dir: Path = None  # type: ignore[assignment]
    spark_master: str = None  # type: ignore[assignment]
    spark_driver_memory: str = None  # type: ignore[assignment]
    spark_shuffle_partitions: int = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        if any(v is None for v in given.values()):
            for name, value in resolve(os.environ, given).items():
                object.__setattr__(self, name, value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: Any) -> Settings:
        """Settings from ``env`` (default: the process environment) and the ``given`` values."""
        return cls(**resolve(os.environ if env is None else env, given))

    def with_(self, **changes: Any) -> Settings:
        """A copy with some settings changed (paths may be given as text)."""
        return replace(self, **resolve({}, {**self.as_dict(), **changes}))

    def as_dict(self) -> dict[str, Any]:
        """``{setting: value}``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def tags_dir(self) -> Path:
        """``<project_dir>/tags``."""
        return self.project_dir / "tags"

    @property
    def segments_dir(self) -> Path:
        """``<project_dir>/segments``."""
        return self.project_dir / "segments"

    @property
    def campaigns_dir(self) -> Path:
        """``<project_dir>/campaigns``."""
        return self.project_dir / "campaigns"

    @property
    def imports_dir(self) -> Path:
        """The imports inbox, archive and reports: ``<data_dir>/imports``."""
        return self.data_dir / "imports"


def current_settings() -> Settings:
    """Settings read from the environment now (not cached: tests change the environment)."""
    return Settings.from_env()
