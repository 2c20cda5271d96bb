"""The one loader: walk the project folder, read every definition once, check them all.

Each definition kind declares where its files live, what its header accepts and how a
file becomes a typed definition (:class:`Kind`, :data:`KINDS`). :func:`load_project`
reads every file of every kind with the same steps (parse the header or YAML once, read
the declared fields, build), then applies the rules between definitions
(:mod:`project.references`). It never raises because a file is wrong: the result is a
:class:`~project.model.Project` whose broken definitions carry their located errors.
Adding a definition kind means declaring a :class:`Kind`, not writing another loop.

Pure: reads files only; imports neither DuckDB nor Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kequn.errors import KequnError, Location, ParseError, flatten, raise_collected
from kequn.header import DefinitionFile, parse_header, read_text
from kequn.yaml_header import YAML_SUFFIXES, parse_yaml_header
from project import campaign, rule, segment, tag
from project.fields import Field, Values, read_fields
from project.model import Broken, Project
from project.references import (
    Entry,
    check_campaigns,
    check_rules,
    check_segments,
    check_tags,
    relative,
    unique_names,
)

Builder = Callable[[DefinitionFile, Values, list[KequnError], Path], Any]


@dataclass(frozen=True)
class Kind:
    """A kind of definition: its files, header keyword and fields, and its builder."""

    name: str
    keyword: str
    folder: str
    suffixes: tuple[str, ...]
    sample: str
    fields: tuple[Field, ...]
    build: Builder
    """(parsed file, field values, errors, kind folder) -> definition, or None if broken."""


KINDS: tuple[Kind, ...] = (
    Kind("tag", "TAG", "tags", (".sql",), tag.SAMPLE, tag.FIELDS, tag.build_tag),
    Kind("segment", "SEGMENT", "segments", (".sql",), segment.SAMPLE, segment.FIELDS,
         segment.build_segment),
    Kind("campaign", "CAMPAIGN", "campaigns", (".sql", *YAML_SUFFIXES), campaign.SAMPLE,
         campaign.FIELDS, campaign.build_campaign),
    Kind("rule", "RULE", "rules", (".sql",), rule.SAMPLE, rule.FIELDS, rule.build_rule),
)
KIND_BY_NAME = {kind.name: kind for kind in KINDS}


def definition_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """The definition files under ``folder`` (recursively, hidden files skipped), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not p.name.startswith("."))


def parse_definition(kind: Kind, path: Path) -> DefinitionFile:
    """Read and parse one file of ``kind`` (a header, or YAML); a located error if it can't."""
    text = read_text(path)
    if path.suffix.lower() in YAML_SUFFIXES:
        return parse_yaml_header(text, path, kind.keyword)
    return parse_header(text, path, {kind.keyword: kind.sample})


def read_entry(kind: Kind, path: Path, folder: Path) -> Entry:
    """One file read on its own: its definition, or every problem found in it."""
    errors: list[KequnError] = []
    name, name_location, built = path.stem, Location(path), None
    try:
        definition = parse_definition(kind, path)
    except KequnError as exc:
        errors.append(exc)
    else:
        values = read_fields(definition, kind.fields, errors)
        if values["name"]:
            name, name_location = values["name"], definition.location("name")
        try:
            built = kind.build(definition, values, errors, folder)
        except KequnError as exc:
            errors.append(exc)
    ordered = sorted(flatten(errors), key=lambda e: (e.line, e.col))  # in file order
    return Entry(kind.name, name, path, built if not errors else None, ordered,
                 name_location=name_location)


def read_definition(path: Path, kind: str | None = None) -> Any:
    """One definition file read and checked on its own (without the rules between files);
    raises its located problems together. ``kind`` defaults to the file's header keyword."""
    entry = read_entry(KIND_BY_NAME[kind] if kind else _kind_of(path), path, path.parent)
    raise_collected(entry.errors)
    return entry.definition


def load_project(root: Path, *, drafts: Iterable[Path] = (),
                 folders: Mapping[str, Path] | None = None) -> Project:
    """Read and check every definition under ``root`` (``tags/``, ``segments/``...).

    ``drafts`` are files outside the project checked as part of it: a draft replaces the
    project's definition of the same kind and name (an edited copy checked in place).
    ``folders`` points a kind at another folder (``{"tag": Path("other/tags")}``).
    """
    root = Path(root)
    folders = dict(folders or {})
    drafted = _read_drafts(drafts)
    entries: dict[str, dict[str, Entry]] = {}
    every: dict[str, list[Entry]] = {}
    for kind in KINDS:
        folder = Path(folders.get(kind.name, root / kind.folder))
        replaced = {d.path.resolve() for d in drafted.get(kind.name, [])}
        read = [read_entry(kind, path, folder)
                for path in definition_files(folder, kind.suffixes)
                if path.resolve() not in replaced]
        drafts_of_kind = drafted.get(kind.name, [])
        names = {d.name for d in drafts_of_kind}
        every[kind.name] = [e for e in read if e.name not in names] + drafts_of_kind
        entries[kind.name] = unique_names(every[kind.name], folder)
    order = check_tags(entries["tag"])
    check_segments(entries["segment"], entries["tag"])
    check_campaigns(entries["campaign"], entries["segment"])
    check_rules(entries["rule"], entries["tag"], entries["segment"], entries["campaign"])
    return _assemble(root, entries, every, order)


def _read_drafts(paths: Iterable[Path]) -> dict[str, list[Entry]]:
    found: dict[str, list[Entry]] = {}
    for path in paths:
        kind = _kind_of(path)
        found.setdefault(kind.name, []).append(read_entry(kind, path, path.parent))
    return found


def _kind_of(path: Path) -> Kind:
    """The kind of a file outside the project: by its header keyword (YAML: a campaign)."""
    if path.suffix.lower() in YAML_SUFFIXES:
        return KIND_BY_NAME["campaign"]
    try:
        text = read_text(path)
    except ParseError:
        return KIND_BY_NAME["segment"]
    for line in text.splitlines():
        words = line.split("--", 1)[0].replace("(", " ").split()
        if words:
            for kind in KINDS:
                if words[0].upper() == kind.keyword:
                    return kind
            break
    return KIND_BY_NAME["segment"]


def _assemble(root: Path, entries: dict[str, dict[str, Entry]],
              every: dict[str, list[Entry]], tag_order: list[str]) -> Project:
    """The Project: usable definitions by name, the others as Broken, every error by kind.

    A later file that defines a name already taken is reported but owns nothing.
    """
    project = Project(root=root)
    for kind, table in entries.items():
        project.errors[kind] = [e for entry in sorted(every[kind], key=lambda x: str(x.path))
                                for e in entry.errors]
        for name, entry in sorted(table.items()):
            if not entry.usable:
                project.broken[(kind, name)] = Broken(
                    kind, name, entry.path, tuple(entry.errors), tuple(entry.upstream),
                    _reason(entry, entries, root),
                    entry.definition if not entry.errors else None)
    project.tags = {name: entries["tag"][name].definition for name in tag_order}
    project.segments = {name: e.definition for name, e in sorted(entries["segment"].items())
                        if e.usable}
    project.campaigns = {name: e.definition for name, e in sorted(entries["campaign"].items())
                         if e.usable}
    project.rules = {name: e.definition for name, e in sorted(entries["rule"].items())
                     if e.usable}
    return project


def _reason(entry: Entry, entries: dict[str, dict[str, Entry]], root: Path) -> str:
    """Why ``entry`` cannot be built: its own errors, else the broken ones it needs."""
    if entry.errors:
        return "\n".join(e.headline() for e in entry.errors)
    needs = []
    for kind, name in entry.upstream:
        upstream = entries[kind][name]
        needs.append(f"{kind} '{name}' ({relative(upstream.path, root)}) is broken")
    return "it needs a broken definition: " + "; ".join(needs)
