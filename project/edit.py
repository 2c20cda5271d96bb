"""Writing definition files: sharing a segment, and the definition of a new file segment.

Sharing (分享) lives in the definition file, beside ``owner``, because it is part of the
segment's reviewed, versioned definition: it changes the asset's code_version and shows
in Dagster and in code review (favourites, which are personal, live in the warehouse).
An edit touches only the value it changes (found through the header's own spans),
re-reads the result to prove it still loads as intended, and replaces the file with an
atomic rename, so a file is never left half-written.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from kequn.errors import KequnError, ValidationError
from kequn.header import parse_header, read_text
from kequn.names import name_problem, team_problem
from project.loader import KIND_BY_NAME, read_entry
from project.segment import MATCH_MODES, Segment

DEFAULT_OWNER = "team:data_platform"
_SEGMENT = KIND_BY_NAME["segment"]


def _replace_checked(path: Path, text: str, check: Callable[[Segment], None]) -> Path:
    """Write ``text`` to ``path`` atomically once it loads as a segment passing ``check``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        entry = read_entry(_SEGMENT, tmp, path.parent)
        if entry.errors:
            raise entry.errors[0]
        check(entry.definition)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def set_shared_with(segment: Segment, teams: list[str]) -> Path:
    """Rewrite ``segment``'s file so that ``shared_with`` lists exactly ``teams``."""
    for team in teams:
        problem = team_problem(team)
        if problem:
            raise ValidationError(problem)
    path = segment.path
    text = read_text(path)
    fields = parse_header(text, path, {"SEGMENT": ""}).fields
    value = f"({', '.join(teams)})"
    if "shared_with" in fields:
        item = fields["shared_with"]
        new_text = text[:item.start] + value + text[item.end:]
    else:
        end = fields["owner"].end
        new_text = text[:end] + f",\n  shared_with {value}" + text[end:]

    def same_teams(reread: Segment) -> None:
        if sorted(reread.shared_with) != sorted(teams):
            raise ValidationError("the edited definition did not keep the teams; file left "
                                  "unchanged", segment.definition.location("shared_with"))

    return _replace_checked(path, new_text, same_teams)


def share(segment: Segment, team: str, *, remove: bool = False) -> list[str]:
    """Add (or remove) ``team`` in ``shared_with``; returns the new list (file rewritten)."""
    teams = list(segment.shared_with)
    if remove:
        teams = [t for t in teams if t != team]
    elif team not in teams:
        teams.append(team)
    if teams != list(segment.shared_with):
        set_shared_with(segment, teams)
    return teams


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


def existing_file_segment(segments_dir: Path, name: str) -> Segment | None:
    """The saved file segment ``name``, or None when there is no definition file yet.

    A definition that is broken or of another kind is an error (located).
    """
    path = segments_dir / f"{name}.sql"
    if not path.exists():
        return None
    entry = read_entry(_SEGMENT, path, segments_dir)
    if entry.errors:
        raise entry.errors[0]
    existing: Segment = entry.definition
    if existing.kind != "file":
        raise ValidationError(f"segment '{name}' is a {existing.kind} segment, not a file "
                              "segment", existing.definition.location("kind"))
    return existing


def ensure_file_segment(segments_dir: Path, name: str, match: str, *,
                        owner: str = DEFAULT_OWNER, description: str = "") -> tuple[Path, bool]:
    """The definition file of file segment ``name``, written (atomically) if missing.

    Returns (path, created). An existing definition of another kind is an error.
    """
    problem = name_problem(name) or team_problem(owner)
    if problem:
        raise ValidationError(problem)
    if match not in MATCH_MODES:
        raise ValidationError(f"unknown match mode '{match}' (one of {', '.join(MATCH_MODES)})")
    path = segments_dir / f"{name}.sql"
    if existing_file_segment(segments_dir, name) is not None:
        return path, False
    segments_dir.mkdir(parents=True, exist_ok=True)
    text = file_definition_text(name, match, owner,
                                description or f"Uploaded list {name} (matched by {match})")

    def is_new_file_segment(segment: Segment) -> None:
        if (segment.name, segment.kind, segment.match) != (name, "file", match):
            raise KequnError(f"the new definition of '{name}' did not read back as written")

    return _replace_checked(path, text, is_new_file_segment), True
