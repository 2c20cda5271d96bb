"""Which segments are synced, with what settings: read from the segment definitions.

Uses the segments area's loader (``segments.load.load_segments``), which parses every
``sql/segments/*.sql`` header, including the sync keys of
:mod:`serving.sync_settings`. Imports neither DuckDB nor Dagster (definition loading
must stay cheap).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kequn.errors import ValidationError
from serving.sync_settings import SyncSettings


@dataclass(frozen=True)
class SyncedSegment:
    """A segment with sync settings: its name, settings, owner and definition hash."""

    name: str
    settings: SyncSettings
    owner: str
    description: str
    definition_hash: str
    path: Path


def synced_segments(segments_dir: Path) -> list[SyncedSegment]:
    """Every segment under ``segments_dir`` whose header turns syncing on, by name."""
    from segments.load import load_segments

    if not segments_dir.exists():
        return []
    project = load_segments(segments_dir)
    found = []
    for name in sorted(project.segments):
        segment = project.segments[name]
        if isinstance(segment.sync, SyncSettings):
            found.append(SyncedSegment(name, segment.sync, segment.owner, segment.description,
                                       segment.definition_hash, segment.path))
    return found


def synced_segment(segments_dir: Path, name: str) -> SyncedSegment:
    """The synced segment called ``name``; a located error if unknown or not synced."""
    from segments.load import load_segments

    project = load_segments(segments_dir)
    segment = project.get(name)
    if not isinstance(segment.sync, SyncSettings):
        raise ValidationError(
            f"segment '{name}' is not synced",
            segment.definition.location(None),
            hint="add 'sync on' (and optionally sync_schedule, max_removed_ratio...) "
            "to its SEGMENT header",
        )
    return SyncedSegment(name, segment.sync, segment.owner, segment.description,
                         segment.definition_hash, segment.path)
