"""Where things live: the warehouse, the serving database and the definition folders.

Defaults point inside the repository (``data/`` and ``sql/``); environment variables
``KEQUN_WAREHOUSE``, ``KEQUN_SERVING_URL``, ``KEQUN_PROJECT_DIR``, ``KEQUN_DATA_DIR``
and ``KEQUN_RAW_MODE`` override them, and the command line's global options override those.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUSINESS_TIMEZONE = "Asia/Shanghai"


def _data_dir() -> Path:
    return Path(os.environ.get("KEQUN_DATA_DIR", REPO_ROOT / "data"))


@dataclass(frozen=True)
class Settings:
    """Resolved paths and URLs for one run of kequn."""

    warehouse: Path = field(default_factory=lambda: Path(
        os.environ.get("KEQUN_WAREHOUSE", _data_dir() / "warehouse.duckdb")))
    serving_url: str = field(default_factory=lambda: os.environ.get(
        "KEQUN_SERVING_URL", f"sqlite:///{_data_dir() / 'serving.sqlite'}"))
    project_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("KEQUN_PROJECT_DIR", REPO_ROOT / "sql")))
    data_dir: Path = field(default_factory=_data_dir)
    raw_mode: str = field(default_factory=lambda: os.environ.get("KEQUN_RAW_MODE", "demo"))
    """``demo``: raw/* assets generate the demo warehouse; ``external``: raw/* are the
    lender's existing tables, declared as external assets that kequn never writes."""

    @property
    def tags_dir(self) -> Path:
        return self.project_dir / "tags"

    @property
    def segments_dir(self) -> Path:
        return self.project_dir / "segments"

    @property
    def campaigns_dir(self) -> Path:
        return self.project_dir / "campaigns"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME", self.data_dir / "dagster_home"))

    @property
    def imports_dir(self) -> Path:
        return self.data_dir / "imports"


def current_settings() -> Settings:
    """Settings read from the environment now (not cached: tests change the environment)."""
    return Settings()
