"""The application context: settings, the project and its plan, and the connections.

One :class:`KequnContext` per process (the command line builds it from its global
options; the Dagster code location from the environment) owns everything the
commands and the assets share, so neither re-reads the environment, re-loads the
definitions or opens a database its own way:

* ``settings``: every path, limit and time-out (:class:`kequn.settings.Settings`);
* ``project``: the definitions, loaded once (:func:`project.loader.load_project`), broken
  ones included with their errors;
* ``plan``: the project compiled once (:func:`plan.compile_project`); the day is bound
  when a query runs;
* connections: the warehouse (waiting for its lock) and the serving database (migrated),
  and the engines' limits (sandbox, uploads).

In Dagster the context is the ``kequn`` resource (``dg.ResourceParam[KequnContext]``).

The database engines are imported when a connection is first asked for, so a command
that needs none (listing segments, validating) starts without loading DuckDB or psycopg.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from kequn.settings import Settings
from plan import Plan, compile_project
from project.loader import load_project
from project.model import Project

if TYPE_CHECKING:
    import duckdb

    from issuance.service import Issuer
    from project.roles import Roles
    from segments.sandbox import SandboxLimits
    from serving.db import ServingDB
    from warehouse.db import Warehouse


class KequnContext:
    """Settings, project, plan and connections for one process; see the module docstring."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()

    def __repr__(self) -> str:
        return f"KequnContext(project={self.settings.project_dir})"

    # -- definitions ------------------------------------------------------------------
    @cached_property
    def project(self) -> Project:
        """Every definition under ``settings.project_dir``, loaded and checked once."""
        return load_project(self.settings.project_dir)

    @cached_property
    def plan(self) -> Plan:
        """The project compiled once; it serves every day."""
        return compile_project(self.project)

    def project_with(self, drafts: Iterable[Path]) -> Project:
        """The project with ``drafts`` (files outside it) checked in place of their namesakes."""
        return load_project(self.settings.project_dir, drafts=list(drafts))

    # -- connections ------------------------------------------------------------------
    @property
    def warehouse(self) -> Warehouse:
        """The warehouse file, with the configured wait for its lock."""
        from warehouse.db import Warehouse

        return Warehouse(self.settings.warehouse, self.settings.warehouse_wait_s)

    def connect_warehouse(self, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A warehouse connection (close it when done); waits while another process writes."""
        return self.warehouse.connect(read_only=read_only)

    def connect_serving(self) -> ServingDB:
        """The serving database with the serving, issuance and rules schemas up to date."""
        from issuance.schema import migrate as migrate_issuance
        from rules.schema import migrate as migrate_rules
        from serving.db import connect as connect_serving

        db = connect_serving(self.settings.serving_url)
        try:
            migrate_issuance(db)
            migrate_rules(db)
        except BaseException:
            db.close()
            raise
        return db

    @contextmanager
    def serving_kept_open(self) -> Iterator[None]:
        """The serving database kept open while inside (:func:`serving.db.kept_open`: the
        closes of the connections opened meanwhile do not each checkpoint its WAL)."""
        from serving.db import kept_open

        with kept_open(self.settings.serving_url):
            yield

    @contextmanager
    def issuer(self, *, with_campaigns: bool = True) -> Iterator[Issuer]:
        """An Issuer on the serving database (the project's campaigns), closed afterwards."""
        from issuance.service import Issuer

        db = self.connect_serving()
        try:
            yield Issuer(db, self.project.campaigns if with_campaigns else {})
        finally:
            db.close()

    # -- identity, roles and the audit log -------------------------------------------
    @cached_property
    def roles(self) -> Roles:
        """Who may approve what (``<project>/roles.yaml``)."""
        from project.roles import load_roles

        return load_roles(self.settings.project_dir)

    def audit(self, action: str, obj: str, *, before: object = None, after: object = None,
              detail: str = "", user: str | None = None) -> None:
        """Append one audit log entry as ``settings.user`` (else ``user``, else
        ``anonymous``) for a change made outside the serving database, right after it
        succeeded."""
        from serving.audit import record

        user = self.settings.user or user or "anonymous"
        db = self.connect_serving()
        try:
            with db.transaction():
                record(db, user, action, obj, before=before, after=after, detail=detail)
        finally:
            db.close()

    # -- engine limits ----------------------------------------------------------------
    @property
    def sandbox_limits(self) -> SandboxLimits:
        """Time, memory and threads of an analyst's SQL segment."""
        from segments.sandbox import SandboxLimits

        s = self.settings
        return SandboxLimits(s.sandbox_timeout_s, s.sandbox_memory_limit, s.sandbox_threads)

    @property
    def reports_dir(self) -> Path:
        """Where the import reports of a definition's own sample file go."""
        return self.settings.imports_dir / "reports"
