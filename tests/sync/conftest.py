"""Fixtures for the sync tests: the serving database (SQLite and PostgreSQL) and the
warehouse, shared with the serving tests (``tests/serving/conftest.py``)."""

from __future__ import annotations

from tests.serving.conftest import (  # noqa: F401  (fixtures)
    db,
    postgres_base_url,
    postgres_url,
    serving_url,
    warehouse,
    warehouse_path,
)
