"""Writing a new file-segment definition (for ``segments import`` and the inbox sensor)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from kequn.errors import ValidationError
from segments.load import NAME_RE, OWNER_RE, read_segment
from segments.model import MATCH_MODES, Segment

DEFAULT_OWNER = "team:data_platform"


def file_definition_text(name: str, match: str, owner: str, description: str) -> str:
    """The text of a minimal ``kind file`` definition."""
    safe = description.replace("'", "''")
    return (f"-- {description}\n"
            "SEGMENT (\n"
            f"  name {name},\n"
            "  kind file,\n"
            f"  owner '{owner}',\n"
            f"  description '{safe}',\n"
            f"  match {match},\n"
            ");\n")


def ensure_file_segment(segments_dir: Path, name: str, match: str, *,
                        owner: str = DEFAULT_OWNER, description: str = "") -> tuple[Path, bool]:
    """The definition file of file segment ``name``, written (atomically) if missing.

    Returns (path, created). An existing definition of another kind is an error.
    """
    if not NAME_RE.match(name):
        raise ValidationError(f"segment name '{name}' must be snake_case (a-z, 0-9, _)")
    if match not in MATCH_MODES:
        raise ValidationError(f"unknown match mode '{match}' (one of {', '.join(MATCH_MODES)})")
    if not OWNER_RE.match(owner):
        raise ValidationError(f"owner '{owner}' must look like 'team:<dept>'")
    path = segments_dir / f"{name}.sql"
    if path.exists():
        existing: Segment = read_segment(path)
        if existing.kind != "file":
            raise ValidationError(f"segment '{name}' is a {existing.kind} segment, not a file "
                                  "segment", existing.definition.location("kind"))
        return path, False
    segments_dir.mkdir(parents=True, exist_ok=True)
    text = file_definition_text(name, match, owner,
                                description or f"Uploaded list {name} (matched by {match})")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path, True
