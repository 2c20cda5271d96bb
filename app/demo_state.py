"""What `kequn demo` clears before it starts, so that every demo begins from nothing.

The demo regenerates the warehouse, so every tag, segment and sync built from the old
one is stale; a serving database that still holds the old syncs would make the new
demo's first sync look like a mass removal and be (rightly) blocked by its guardrails.
Only local files are removed: the warehouse file, a SQLite serving database and, on
engine spark, the lake's tags and segments (their history would otherwise start from the
old demo's days). A PostgreSQL serving database is never touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kequn.settings import Settings
from serving.db import sqlite_path


def _with_companions(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return [path, *(path.with_name(path.name + suffix) for suffix in suffixes)]


def demo_files(settings: Settings) -> list[Path]:
    """The local files a fresh demo replaces (whether or not they exist now)."""
    files = _with_companions(settings.warehouse, (".wal",))
    url = settings.serving_url
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        files += _with_companions(Path(sqlite_path(url)), ("-wal", "-shm", ".locks"))
    if settings.engine == "spark":  # what Spark built from the old raw tables
        files += [settings.lake_dir / "tags", settings.lake_dir / "segments"]
    return files


def clear_demo_state(settings: Settings) -> list[Path]:
    """Remove the demo's local files; returns those that existed and were removed."""
    removed = []
    for path in demo_files(settings):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed
