"""The Dagster instance's embedded storage: Dagster's SQLite storage, with connections kept open.

Dagster's SQLite event log opens a new engine, connects, commits and disposes for every
event it stores; a tag build of one day stores about 450 events (step events, planned and
evaluated checks, materialisations, observations), each paying a connect, a synced commit and the
checkpoint SQLite runs when the last connection to a WAL database closes. That bookkeeping cost more
than the engine work of a small day. :class:`KequnSqliteStorage` is the same storage (same
files, tables and layout under ``$DAGSTER_HOME``, so existing instances keep their history)
whose event log keeps one pooled engine per database file it writes to, and commits
without waiting for the disk (``synchronous=NORMAL`` in WAL mode: safe when the process is
killed, which is what a run must survive). Selected in
``dagster_project/dagster.yaml``::

    storage:
      custom:
        module: dagster_project.instance_storage
        class: KequnSqliteStorage
        config:
          base_dir: {env: DAGSTER_HOME}

The files live under ``$DAGSTER_HOME``, where Dagster looks for ``dagster.yaml`` in the
first place (:func:`dagster_project.runner.dagster_instance` sets it to the configured
home); a process opening an instance of another folder with ``DagsterInstance.from_config``
sets ``DAGSTER_HOME`` to that folder first. A production deployment configures
``storage: postgres:`` instead (Dagster's own).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import create_db_conn_string
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

OPEN_DATABASES = 4
"""Engines kept per process: the cross-run index and the few runs being written."""
BUSY_TIMEOUT_S = 30


def _no_sync_per_commit(dbapi_connection: Any, _record: Any) -> None:
    """WAL with ``synchronous=NORMAL``: a commit survives the process being killed (what the
    run bookkeeping needs); only a power loss can drop the last few events."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's per-run SQLite event log, with one pooled engine per database file.

    Promises the same reads and writes as :class:`SqliteEventLogStorage` (each operation
    still runs in its own committed transaction); only the connection handling differs.
    The engines of the ``OPEN_DATABASES`` most recently used files stay open; a process
    that forks gets fresh ones.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._pid = os.getpid()
        self._tables_found: set[str] = set()
        self._asset_key_columns_found: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        if self._pid != os.getpid():  # forked: the parent's connections are not ours
            self._engines.clear()
            self._pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(create_db_conn_string(self._base_dir, shard),
                                   connect_args={"timeout": BUSY_TIMEOUT_S,
                                                 "check_same_thread": False})
            event.listen(engine, "connect", _no_sync_per_commit)
            self._engines[shard] = engine
            while len(self._engines) > OPEN_DATABASES:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
        self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        """Whether the index database has ``table_name``.

        Dagster asks before every asset-check event, each time through a new engine,
        connected and disposed (2 ms); its tables are only ever added, by its migrations,
        so a table once found is remembered until the storage is wiped or closed. (Asked
        the first time as Dagster does, on its own engine: it is also asked while a pooled
        connection holds the storage's lock.)"""
        if table_name in self._tables_found:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables_found.add(table_name)
        return found

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        """Whether the asset keys table has ``column_name``.

        Dagster asks before storing every asset event (reflecting the table's columns,
        about 0.2 ms, 280 times in a day's run); like tables, columns are only ever added
        by its migrations, so a column once found is remembered until the storage is wiped
        or closed."""
        if column_name in self._asset_key_columns_found:
            return True
        found = super()._has_asset_key_col_on_connection(conn, column_name)
        if found:
            self._asset_key_columns_found.add(column_name)
        return found

    def _close_all(self) -> None:
        with self._db_lock:
            self._tables_found.clear()
            self._asset_key_columns_found.clear()
            while self._engines:
                _, engine = self._engines.popitem()
                engine.dispose()

    def wipe(self) -> None:
        """Delete every run's events (the files of the open engines are closed first)."""
        self._close_all()
        super().wipe()

    def dispose(self) -> None:
        """Close every open engine."""
        self._close_all()
        super().dispose()


class KequnSqliteStorage(DagsterSqliteStorage):
    """Dagster's embedded SQLite storage (runs, event log, schedules under ``base_dir``)
    with the pooled event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Any) -> KequnSqliteStorage:
        """The storage for the ``base_dir`` of the instance's configuration."""
        return cls.from_local(inst_data=inst_data, **config_value)
