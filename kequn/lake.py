"""The lake layout (engine ``spark``, DESIGN §10): one folder of Parquet per table.

::

    <lake>/raw/<table>/                                  the lender's raw tables
    <lake>/tags/_src_<group>/as_of=D/                    a storage group's rows for day D
    <lake>/tags/customer_tags/as_of=D/                   the wide table for day D
    <lake>/segments/members/segment=S/as_of=D/           a segment's members for day D

A partition is replaced whole by :func:`replace_dir`: the new rows are written to a hidden
temporary folder beside it (``.tmp-*``, which Spark and DuckDB never read), then renamed
into place; a re-run or a killed run never leaves a mix of old and new files.

>>> lake = Lake(Path("/l"))
>>> str(lake.members_partition("wake_up", date(2026, 11, 21)))
'/l/segments/members/segment=wake_up/as_of=2026-11-21'
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from kequn.tables import CUSTOMER_TAGS, MEMBERS, Table


@dataclass(frozen=True)
class Lake:
    """Where each table of the lake lives under ``root``."""

    root: Path

    def table(self, table: Table) -> Path:
        """``<root>/<schema>/<table>``: the folder of one table (all its partitions)."""
        return self.root / table[0] / table[1]

    def raw(self, name: str) -> Path:
        """``<root>/raw/<name>``."""
        return self.root / "raw" / name

    def day_partition(self, table: Table, day: date) -> Path:
        """``<table folder>/as_of=D``."""
        return self.table(table) / f"as_of={day.isoformat()}"

    def wide_partition(self, day: date) -> Path:
        """``<root>/tags/customer_tags/as_of=D``."""
        return self.day_partition(CUSTOMER_TAGS, day)

    def members_partition(self, segment: str, day: date) -> Path:
        """``<root>/segments/members/segment=S/as_of=D``."""
        return self.table(MEMBERS) / f"segment={segment}" / f"as_of={day.isoformat()}"

    def temp_beside(self, final: Path) -> Path:
        """A hidden temporary folder next to ``final`` (same file system: renames are atomic)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:12]}"


def has_parquet(folder: Path) -> bool:
    """Whether ``folder`` holds at least one Parquet file (at any depth, hidden ones aside)."""
    if not folder.is_dir():
        return False
    return any(not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
               for p in folder.rglob("*.parquet"))


def replace_dir(temp: Path, final: Path) -> None:
    """Move the finished folder ``temp`` to ``final``, replacing what was there.

    The old folder is first renamed aside (hidden), then ``temp`` renamed into place, then
    the old one deleted: readers see the old partition or the new one, never a mix (for a
    moment, none).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:12]}"
    if final.exists():
        os.rename(final, old)
    os.rename(temp, final)
    shutil.rmtree(old, ignore_errors=True)
