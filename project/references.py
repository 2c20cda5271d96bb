"""The rules between definitions: duplicates, references, types, cycles and dependents.

Each file is first read on its own (:mod:`project.loader`) into an :class:`Entry`. The
rules here need several files at once:

* a name is defined once per kind (the first file, in path order, keeps it);
* a derived tag reads existing tags, of fitting types, without a cycle;
* a rule names existing tags and is a condition; a combine names existing segments,
  without a cycle;
* a campaign targets an existing segment that is synced and shared with its owner;
* a rule's condition and templates name existing tags or its event's fields, the
  condition is a condition, and its segment and campaigns exist.

A reference to a definition whose own file is broken is not reported again: the
referring definition is marked as waiting for it (``Entry.upstream``), so that it is
skipped with that reason while everything else builds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kequn.errors import KequnError, Location, ValidationError, did_you_mean
from kequn.sqlsource import node_location
from project.campaign import Campaign
from project.combine import walk_refs
from project.expressions import check_condition, fits, infer_type, references, unknown_names
from project.rule import ALWAYS, Rule
from project.segment import Segment
from project.tag import Tag


@dataclass
class Entry:
    """One definition file while the project is checked."""

    kind: str
    name: str
    path: Path
    definition: Any | None
    """The built Tag/Segment/Campaign, or None when the file itself is broken."""
    errors: list[KequnError] = field(default_factory=list)
    upstream: list[tuple[str, str]] = field(default_factory=list)
    name_location: Location = field(default_factory=Location)

    @property
    def usable(self) -> bool:
        """Built, with no problem of its own and nothing broken upstream."""
        return self.definition is not None and not self.errors and not self.upstream


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it, else as given."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def unique_names(entries: Iterable[Entry], root: Path) -> dict[str, Entry]:
    """Entries by name. The first file (in path order) that reads keeps a name; a later one
    that also reads gets a located error. A broken file keeps its name only when no file
    that reads has it (its own errors say what is wrong)."""
    listed = list(entries)
    by_name: dict[str, Entry] = {}
    for entry in (e for e in listed if e.definition is not None):
        first = by_name.get(entry.name)
        if first is None:
            by_name[entry.name] = entry
            continue
        entry.errors.append(ValidationError(
            f"{entry.kind} '{entry.name}' is also defined in {relative(first.path, root)}",
            entry.name_location))
    for entry in (e for e in listed if e.definition is None):
        by_name.setdefault(entry.name, entry)
    return by_name


def _waits_for(entry: Entry, upstream: Entry) -> bool:
    """Mark ``entry`` as needing ``upstream`` when that one is not usable; True if so."""
    if upstream.usable:
        return False
    key = (upstream.kind, upstream.name)
    if key not in entry.upstream:
        entry.upstream.append(key)
    return True


def check_tags(tags: dict[str, Entry]) -> list[str]:
    """References, types and cycles of derived tags; returns the usable tags' names in
    dependency order (atomic first, each derived tag after the tags it reads)."""
    for entry in tags.values():
        tag: Tag | None = entry.definition
        if tag is None or tag.kind != "derived" or entry.errors:
            continue
        assert tag.expression is not None
        source = tag.source_text
        entry.errors.extend(unknown_names(tag.expression, tags, tag.path, source,
                                          f" in the expression of '{tag.name}'"))
        for column in references(tag.expression):
            if column.name.lower() == tag.name:
                entry.errors.append(ValidationError(f"tag '{tag.name}' refers to itself",
                                                    node_location(column, tag.path, source)))
    _check_cycles(tags)
    order = _topological(tags)
    types: dict[str, str] = {}
    for name in order:
        entry = tags[name]
        tag = entry.definition
        if tag.kind == "derived":
            for dep in tag.depends_on:
                if dep in tags and dep != name:
                    _waits_for(entry, tags[dep])
        if not entry.usable:
            continue
        if tag.kind == "derived":
            try:
                inferred = infer_type(tag.expression, types, tag.path, tag.source_text)
            except KequnError as err:
                entry.errors.append(err)
                continue
            if not fits(inferred, tag.value_type):
                entry.errors.append(ValidationError(
                    f"the expression is {inferred} but '{tag.name}' declares value_type "
                    f"{tag.value_type}",
                    node_location(tag.expression, tag.path, tag.source_text)))
                continue
        types[name] = tag.value_type
    return [name for name in order if tags[name].usable]


def _check_cycles(tags: dict[str, Entry]) -> None:
    """A located error at the first reference of each cycle among derived tags."""
    state: dict[str, str] = {}

    def visit(name: str, stack: list[str]) -> None:
        entry = tags.get(name)
        if entry is None or entry.definition is None or state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*stack[stack.index(name):], name]
            tag: Tag = entry.definition
            column = next(c for c in references(tag.expression) if c.name.lower() == cycle[1])
            entry.errors.append(ValidationError(
                f"derived tags form a cycle: {' -> '.join(cycle)}",
                node_location(column, tag.path, tag.source_text)))
            return
        state[name] = "visiting"
        for dep in entry.definition.depends_on:
            visit(dep, [*stack, name])
        state[name] = "done"

    for name in sorted(n for n, e in tags.items()
                       if e.definition is not None and e.definition.kind == "derived"):
        visit(name, [])


def _topological(tags: dict[str, Entry]) -> list[str]:
    """Built tags in dependency order (tags in a cycle, or over a missing tag, last)."""
    ordered = [n for n, e in tags.items() if e.definition is not None
               and e.definition.kind == "atomic"]
    placed = set(ordered)
    pending = sorted(n for n, e in tags.items() if e.definition is not None
                     and e.definition.kind == "derived")
    progress = True
    while pending and progress:
        progress = False
        for name in list(pending):
            deps = [d for d in tags[name].definition.depends_on
                    if d in tags and d != name and tags[d].definition is not None]
            if all(d in placed for d in deps):
                ordered.append(name)
                placed.add(name)
                pending.remove(name)
                progress = True
    return ordered + pending


def check_segments(segments: dict[str, Entry], tags: dict[str, Entry]) -> None:
    """Rules against the tags; combines against the segments, without cycles."""
    types = {name: e.definition.value_type for name, e in tags.items() if e.usable}
    for entry in segments.values():
        segment: Segment | None = entry.definition
        if segment is None or entry.errors:
            continue
        if segment.condition is not None:
            _check_rule(entry, segment, tags, types)
        for ref in walk_refs(segment.combine):
            if ref.name not in segments:
                entry.errors.append(ValidationError(
                    f"unknown segment '{ref.name}'", ref.location,
                    hint=did_you_mean(ref.name, segments)))
    _check_combine_cycles(segments)
    changed = True
    while changed:  # a combine over a segment that waits waits too
        changed = False
        for entry in segments.values():
            segment = entry.definition
            if segment is None or entry.errors:
                continue
            for name in segment.referenced_segments():
                child = segments.get(name)
                if child is not None and (child.kind, child.name) not in entry.upstream \
                        and _waits_for(entry, child):
                    changed = True


def _check_rule(entry: Entry, segment: Segment, tags: dict[str, Entry],
                types: dict[str, str]) -> None:
    path, source = segment.path, segment.definition.text
    condition = segment.condition
    assert condition is not None
    entry.errors.extend(unknown_names(condition, tags, path, source))
    if entry.errors:
        return
    waiting = [_waits_for(entry, tags[name]) for name in segment.tags]
    if any(waiting):
        return
    try:
        check_condition(condition, types, path, source)
    except KequnError as err:
        entry.errors.append(err)


def _check_combine_cycles(segments: dict[str, Entry]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        entry = segments.get(name)
        if entry is None or entry.definition is None or state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*stack[stack.index(name):], name]
            last = segments[stack[-1]]
            last.errors.append(ValidationError("combine cycle: " + " -> ".join(cycle),
                                               last.name_location))
            return
        state[name] = 1
        for child in entry.definition.referenced_segments():
            visit(child, [*stack, name])
        state[name] = 2

    for name in sorted(segments):
        visit(name, [])


def check_campaigns(campaigns: dict[str, Entry], segments: dict[str, Entry]) -> None:
    """Each campaign's target segment exists, is synced and is shared with its owner."""
    for entry in campaigns.values():
        campaign: Campaign | None = entry.definition
        if campaign is None or entry.errors:
            continue
        where = campaign.location("target_segment")
        target = segments.get(campaign.target_segment)
        if target is None:
            entry.errors.append(ValidationError(
                f"campaign '{campaign.name}' targets unknown segment "
                f"'{campaign.target_segment}'", where,
                hint=did_you_mean(campaign.target_segment, segments)))
            continue
        segment: Segment | None = target.definition
        if segment is None or target.errors:
            _waits_for(entry, target)
            continue
        if segment.sync is None:
            entry.errors.append(ValidationError(
                f"segment '{segment.name}' is not synced, so no customer is ever eligible "
                f"for campaign '{campaign.name}'", where,
                hint=f"add 'sync on' to the SEGMENT header in {segment.path}"))
        allowed = {segment.owner, *segment.shared_with}
        if campaign.owner and campaign.owner not in allowed:
            entry.errors.append(ValidationError(
                f"segment '{segment.name}' is not shared with {campaign.owner} "
                f"(owner {segment.owner}; shared with "
                f"{', '.join(segment.shared_with) or 'nobody'})", campaign.location("owner"),
                hint=f"kequn segments share {segment.name} {campaign.owner}"))


def check_rules(rules: dict[str, Entry], tags: dict[str, Entry], segments: dict[str, Entry],
                campaigns: dict[str, Entry]) -> None:
    """Each rule's names against the tags, its event's fields, segments and campaigns."""
    tag_types = {name: e.definition.value_type for name, e in tags.items() if e.usable}
    for entry in rules.values():
        rule: Rule | None = entry.definition
        if rule is None or entry.errors:
            continue
        path, source = rule.path, rule.definition.text
        local = rule.event_fields
        known = {**tags, **local}
        context = f" (tags and the {rule.trigger.kind} event's fields: " \
                  f"{', '.join(local) or 'none'})"
        entry.errors.extend(unknown_names(rule.condition, known, path, source, context))
        readable = {**known, **ALWAYS}
        used = {a.template for a in rule.actions if a.kind == "touch"}
        for template in (t for t in rule.templates.values() if t.name in used):
            for place in template.placeholders:
                if place.name not in readable:
                    entry.errors.append(ValidationError(
                        f"unknown placeholder '{{{place.name}}}' in template '{template.name}'"
                        f"{context}", place.location, hint=did_you_mean(place.name, readable)))
        for name, location, table, kind in (
                *((a.campaign, a.location, campaigns, "campaign") for a in rule.actions
                  if a.kind == "issue_coupon"),
                *(((rule.trigger.argument, rule.trigger.location, campaigns, "campaign"),)
                  if rule.trigger.kind == "first_drawdown_in_campaign" else ()),
                *(((rule.trigger.argument, rule.trigger.location, segments, "segment"),)
                  if rule.trigger.kind == "segment" else ())):
            if name not in table:
                entry.errors.append(ValidationError(f"unknown {kind} '{name}'", location,
                                                    hint=did_you_mean(name, table)))
            else:
                _waits_for(entry, table[name])
        if entry.errors:
            continue
        waiting = [_waits_for(entry, tags[name]) for name in rule.tags if name in tags]
        if any(waiting):
            continue
        try:
            check_condition(rule.condition, {**tag_types, **local}, path, source)
        except KequnError as err:
            entry.errors.append(err)
