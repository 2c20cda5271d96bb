"""Loading segment definition files (``sql/segments/*.sql``) into a SegmentProject.

Each file opens with a ``SEGMENT (...)`` header (see :data:`SAMPLE_HEADER`). Loading
checks the header and the kind-specific fields, collects every problem of every file
with its file:line:col, and raises them together. It imports neither DuckDB nor
Dagster: definition loading must stay cheap (the code server re-imports it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from kequn.errors import KequnError, ValidationError, did_you_mean, raise_collected
from kequn.header import DefinitionFile, read_definition_file
from segments.combine import parse_combine_field, parse_combine_text
from segments.model import (
    KINDS,
    MATCH_MODES,
    SET_OPS,
    Checks,
    Segment,
    SegmentProject,
)

SAMPLE_HEADER = """\
-- Granted but never drawn: the wake-up audience.
SEGMENT (
  name wake_up,
  kind rule,
  owner 'team:growth',
  description 'Approved customers who never drew a loan',
  shared_with (team:marketing),
  rule 'credit_granted AND NOT drawn',
);"""

BASE_KEYS = {
    "name", "kind", "owner", "description", "shared_with",
    "rule",                                 # kind rule
    "file", "match", "column",              # kind file
    *SET_OPS, "expression",                 # kind combine
    "min_size", "max_size", "max_change_ratio",  # checks
}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
OWNER_RE = re.compile(r"^team:[a-z0-9_][a-z0-9_.-]*$")


def sync_keys() -> frozenset[str]:
    """Header keys owned by the sync module (empty until that module exists)."""
    try:
        from serving.sync_settings import SYNC_KEYS
    except ModuleNotFoundError as exc:
        if exc.name not in ("serving.sync_settings", "serving"):
            raise
        return frozenset()
    return frozenset(SYNC_KEYS)


def _sync_settings(defn: DefinitionFile):
    try:
        from serving.sync_settings import sync_settings_from_header
    except ModuleNotFoundError as exc:
        if exc.name not in ("serving.sync_settings", "serving"):
            raise
        return None
    return sync_settings_from_header(defn)


def allowed_keys() -> dict[str, set[str]]:
    """Header keys a SEGMENT accepts: our own plus the sync module's."""
    return {"SEGMENT": set(BASE_KEYS) | set(sync_keys())}


def read_segment(path: Path) -> Segment:
    """Parse and check one definition file; raise KequnErrors with every problem found."""
    defn = read_definition_file(path, {"SEGMENT": SAMPLE_HEADER}, allowed_keys())
    return segment_from_definition(defn)


def segment_from_definition(defn: DefinitionFile) -> Segment:
    """Build a Segment from a parsed header; every bad field is reported, located."""
    errors: list[KequnError] = []

    def attempt(fn, default=None):
        try:
            return fn()
        except KequnError as exc:
            errors.append(exc)
            return default

    name = attempt(lambda: defn.string("name"), "")
    if name and not NAME_RE.match(name):
        errors.append(ValidationError(
            f"segment name '{name}' must be snake_case (a-z, 0-9, _), starting with a letter",
            defn.location("name")))
    kind = attempt(lambda: defn.string("kind"), "")
    if kind and kind not in KINDS:
        errors.append(ValidationError(f"unknown segment kind '{kind}' (one of {', '.join(KINDS)})",
                                      defn.location("kind"), hint=did_you_mean(kind, KINDS)))
    owner = attempt(lambda: defn.string("owner"), "")
    if owner and not OWNER_RE.match(owner):
        errors.append(ValidationError(f"owner '{owner}' must look like 'team:<dept>'",
                                      defn.location("owner")))
    description = attempt(lambda: defn.string("description", required=False), "")
    shared_with = defn.strings("shared_with")
    for team in shared_with:
        if not OWNER_RE.match(team):
            errors.append(ValidationError(f"shared_with entry '{team}' must look like "
                                          "'team:<dept>'", defn.location("shared_with")))
    checks = attempt(lambda: _checks(defn), Checks())
    segment = Segment(name=name, kind=kind, owner=owner, description=description,
                      shared_with=shared_with, definition=defn, checks=checks)

    if kind == "rule":
        _load_rule(defn, segment, errors)
    elif kind == "sql":
        if defn.body_is_empty():
            errors.append(ValidationError(
                "a sql segment needs a SELECT after the header returning customer_id",
                defn.body_location))
        segment.sql = defn.body
    elif kind == "file":
        _load_file(defn, segment, errors)
    elif kind == "combine":
        _load_combine(defn, segment, errors)
    if kind and kind != "sql" and not defn.body_is_empty():
        errors.append(ValidationError(f"a {kind} segment has no SQL body; remove the text "
                                      "after the header", defn.body_location))
    if kind != "rule" and defn.has("rule"):
        errors.append(ValidationError("'rule' only applies to kind rule", defn.location("rule")))
    if not errors:
        segment.sync = attempt(lambda: _sync_settings(defn))
    raise_collected(errors)
    return segment


def _load_rule(defn: DefinitionFile, segment: Segment, errors: list[KequnError]) -> None:
    try:
        segment.rule = defn.string("rule")
    except KequnError as exc:
        errors.append(exc)
        return
    segment.rule_location = defn.location("rule")


def _load_file(defn: DefinitionFile, segment: Segment, errors: list[KequnError]) -> None:
    match = defn.string("match", required=False, default="id")
    if match not in MATCH_MODES:
        errors.append(ValidationError(f"unknown match mode '{match}' (one of "
                                      f"{', '.join(MATCH_MODES)})", defn.location("match"),
                                      hint=did_you_mean(match, MATCH_MODES)))
    segment.match = match
    segment.column = defn.string("column", required=False)
    if defn.has("file"):
        path = (defn.path.parent / defn.string("file")).resolve()
        if not path.is_file():
            errors.append(ValidationError(f"file '{defn.string('file')}' does not exist "
                                          f"(looked for {path})", defn.location("file")))
        segment.file = path


def _load_combine(defn: DefinitionFile, segment: Segment, errors: list[KequnError]) -> None:
    given = [key for key in (*SET_OPS, "expression") if defn.has(key)]
    if len(given) != 1:
        errors.append(ValidationError(
            "a combine segment needs exactly one of union (...), intersect (...), except (...) "
            "or expression '(a UNION b) EXCEPT c'"
            + (f"; found {', '.join(given)}" if given else ""),
            defn.location(given[1] if len(given) > 1 else None)))
        return
    key = given[0]
    try:
        if key == "expression":
            text = defn.string("expression")
            segment.combine = parse_combine_text(text, defn.path, defn.text,
                                                 _value_offset(defn, key))
        else:
            segment.combine = parse_combine_field(key, defn.strings(key), defn.location(key))
    except KequnError as exc:
        errors.append(exc)


def _value_offset(defn: DefinitionFile, key: str) -> int:
    """File offset of the first character inside a (quoted) header value."""
    item = defn.fields[key]
    loc = item.value_location
    lines = defn.text.splitlines(keepends=True)
    offset = sum(len(line) for line in lines[: loc.line - 1]) + loc.col - 1
    return offset + 1 if item.quoted else offset


def rule_offset(segment: Segment) -> int:
    """File offset where the rule text starts (inside its quotes)."""
    return _value_offset(segment.definition, "rule")


def _checks(defn: DefinitionFile) -> Checks:
    def number(key: str, cast, default):
        if not defn.has(key):
            return default
        raw = defn.string(key)
        if raw.lower() == "none":
            return None
        try:
            value = cast(raw)
        except ValueError:
            raise ValidationError(f"'{key}' must be a number, not '{raw}'",
                                  defn.location(key)) from None
        if value < 0:
            raise ValidationError(f"'{key}' must not be negative, got {raw}", defn.location(key))
        return value

    min_size = number("min_size", int, Checks.min_size)
    max_size = number("max_size", int, None)
    ratio = number("max_change_ratio", float, Checks.max_change_ratio)
    if max_size is not None and min_size is not None and max_size < min_size:
        raise ValidationError(f"max_size {max_size} is below min_size {min_size}",
                              defn.location("max_size"))
    return Checks(min_size=min_size or 0, max_size=max_size, max_change_ratio=ratio)


def segment_files(paths: Iterable[Path]) -> list[Path]:
    """Every ``.sql`` file under the given files/folders, sorted, without duplicates."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*.sql") if p.is_file())
        else:
            found.add(path)
    return sorted(found)


def load_segments(root: Path, extra: Iterable[Path] = ()) -> SegmentProject:
    """Load every segment under ``root`` (plus ``extra`` draft files).

    Collects every problem of every file (duplicate names, unknown segments referenced
    by a combine, combine cycles) and raises them together as KequnErrors.
    """
    project, errors = collect_segments(root, extra)
    raise_collected(errors)
    return project


def collect_segments(root: Path, extra: Iterable[Path] = (),
                     draft: Path | None = None) -> tuple[SegmentProject, list[KequnError]]:
    """Load what loads and return it with every problem found (nothing raised).

    A ``draft`` file, and any ``extra`` file outside ``root``, replaces the project's
    segment of the same name (checking or previewing an edited copy).
    """
    project = SegmentProject(root=root)
    errors: list[KequnError] = []
    files = segment_files([root]) if root.exists() else []
    known = {f.resolve() for f in files}
    outside: set[Path] = set()
    for path in segment_files(extra):
        if path.resolve() not in known:
            files.append(path)
            outside.add(path.resolve())
    draft_segment = None
    if draft is not None:
        draft_segment = read_segment(draft)
        files = [f for f in files if f.resolve() != draft.resolve()]
    for path in files:
        try:
            segment = read_segment(path)
        except KequnError as exc:
            errors.append(exc)
            continue
        if draft_segment is not None and segment.name == draft_segment.name:
            continue
        if segment.name in project.segments and path.resolve() in outside and (
                project.segments[segment.name].path.resolve() not in outside):
            project.segments[segment.name] = segment  # an edited copy checked in place
            continue
        if segment.name in project.segments:
            other = project.segments[segment.name].path
            errors.append(ValidationError(f"segment '{segment.name}' is also defined in {other}",
                                          segment.definition.location("name")))
            continue
        project.segments[segment.name] = segment
    if draft_segment is not None:
        project.segments[draft_segment.name] = draft_segment
    errors.extend(check_references(project))
    return project, errors


def check_references(project: SegmentProject) -> list[KequnError]:
    """Unknown segments and cycles among combine segments, each located."""
    from segments.combine import walk_refs

    errors: list[KequnError] = []
    for segment in project.segments.values():
        for ref in walk_refs(segment.combine):
            if ref.name not in project.segments:
                errors.append(ValidationError(f"unknown segment '{ref.name}'", ref.location,
                                              hint=did_you_mean(ref.name, project.segments)))
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        if state.get(name) == 2 or name not in project.segments:
            return
        if state.get(name) == 1:
            cycle = [*stack[stack.index(name):], name]
            seg = project.segments[stack[-1]]
            errors.append(ValidationError("combine cycle: " + " -> ".join(cycle),
                                          seg.definition.location("name")))
            return
        state[name] = 1
        for child in project.segments[name].referenced_segments():
            visit(child, [*stack, name])
        state[name] = 2

    for name in sorted(project.segments):
        visit(name, [])
    return errors


def tag_types(tags_dir: Path) -> dict[str, str] | None:
    """``{tag: value_type}`` from the tag definitions, or None when the tag module is absent."""
    try:
        from tags.load import load_tags
    except ModuleNotFoundError as exc:
        if exc.name not in ("tags", "tags.load"):
            raise
        return None
    if not tags_dir.exists():
        return None
    project = load_tags(tags_dir)
    return {name: str(tag.value_type) for name, tag in project.tags.items()}
