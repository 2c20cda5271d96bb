"""The loaded project: every valid definition by kind, and every broken one with why.

Loading never fails as a whole because one file is wrong (:mod:`project.loader`): a file
that does not load is a :class:`Broken` definition carrying its located errors, and a
valid definition that needs a broken one (a derived tag over it, a rule naming it, a
combine of it, a campaign targeting it) is broken too, with the ``upstream`` it waits for.
Everything else is usable as if the broken files did not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kequn.errors import KequnError, Location, ValidationError, did_you_mean, raise_collected
from project.campaign import Campaign
from project.rule import Rule
from project.segment import Segment
from project.tag import Tag

D = TypeVar("D", Tag, Segment, Campaign, Rule)

KINDS = ("tag", "segment", "campaign", "rule")
"""Definition kinds, each in its folder of the project (``tags/``, ``segments/``...)."""


@dataclass(frozen=True)
class Broken:
    """A definition that cannot be built: its own errors, or the broken ones it needs."""

    kind: str
    name: str
    path: Path
    errors: tuple[KequnError, ...] = ()
    """This file's own problems (empty when only an upstream definition is broken)."""
    upstream: tuple[tuple[str, str], ...] = ()
    """(kind, name) of the broken definitions this one needs."""
    reason: str = ""
    """Why, in one or more lines: the located errors, or what it waits for."""
    definition: Tag | Segment | Campaign | Rule | None = None
    """The definition itself when its own file is fine (it only waits for ``upstream``)."""

    @property
    def key(self) -> tuple[str, str]:
        """(kind, name)."""
        return (self.kind, self.name)


@dataclass
class Project:
    """Every definition under one folder, by kind and name; see the module docstring."""

    root: Path
    tags: dict[str, Tag] = field(default_factory=dict)
    """Valid tags in dependency order (atomic first, each derived tag after its inputs)."""
    segments: dict[str, Segment] = field(default_factory=dict)
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)
    broken: dict[tuple[str, str], Broken] = field(default_factory=dict)
    """Broken definitions by (kind, name)."""
    errors: dict[str, list[KequnError]] = field(default_factory=dict)
    """Every problem found, each located, by the kind of the file it is in."""

    # -- reading ----------------------------------------------------------------------
    def broken_of(self, kind: str) -> dict[str, Broken]:
        """Broken definitions of ``kind``, by name."""
        return {name: b for (k, name), b in sorted(self.broken.items()) if k == kind}

    def problems(self, kind: str | None = None, paths: Iterable[Path] | None = None
                 ) -> list[KequnError]:
        """Every problem (what ``kequn validate`` prints), or those of one kind, or of the
        given files, in the order the files were read."""
        kinds = [kind] if kind is not None else list(KINDS)
        found = [e for k in kinds for e in self.errors.get(k, [])]
        if paths is not None:
            wanted = {p.resolve() for p in paths}
            found = [e for e in found if e.path is not None and e.path.resolve() in wanted]
        return found

    def raise_problems(self, kind: str | None = None) -> None:
        """Raise every problem (of ``kind``) at once; nothing when there is none."""
        raise_collected(self.problems(kind))

    def tag(self, name: str) -> Tag:
        """The valid tag ``name``, or a located error (its own problems if it is broken)."""
        return self._get("tag", self.tags, name)

    def segment(self, name: str) -> Segment:
        """The valid segment ``name``, or a located error (its own problems if it is broken)."""
        return self._get("segment", self.segments, name)

    def campaign(self, name: str) -> Campaign:
        """The valid campaign ``name``, or a located error (its own problems if broken)."""
        return self._get("campaign", self.campaigns, name)

    def rule(self, name: str) -> Rule:
        """The valid rule ``name``, or a located error (its own problems if broken)."""
        return self._get("rule", self.rules, name)

    def _get(self, kind: str, table: Mapping[str, D], name: str) -> D:
        if name in table:
            return table[name]
        broken = self.broken.get((kind, name))
        if broken is not None:
            raise_collected(broken.errors or [ValidationError(
                f"{kind} '{name}' cannot be built: {broken.reason}", Location(broken.path))])
        known = [*table, *self.broken_of(kind)]
        raise ValidationError(f"unknown {kind} '{name}'", Location(self.root / f"{kind}s"),
                              hint=did_you_mean(name, known))

    # -- views ------------------------------------------------------------------------
    def atomic_tags(self) -> list[Tag]:
        """Valid atomic tags, in project order."""
        return [t for t in self.tags.values() if t.kind == "atomic"]

    def derived_tags(self) -> list[Tag]:
        """Valid derived tags, each after the tags it reads."""
        return [t for t in self.tags.values() if t.kind == "derived"]

    def waiting(self, kind: str) -> dict[str, Tag | Segment | Campaign | Rule]:
        """Definitions of ``kind`` whose own file is fine but which need a broken one."""
        return {name: b.definition for name, b in self.broken_of(kind).items()
                if b.definition is not None}
