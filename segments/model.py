"""What a segment is, as loaded from its definition file (DESIGN §5).

A segment has a name, a kind (``rule``, ``sql``, ``file`` or ``combine``), who owns it
and who may target it, the kind-specific source, check bounds and (optionally) sync
settings owned by the sync module. These classes hold data only; loading lives in
:mod:`segments.load`, compiling in :mod:`segments.rule` / :mod:`segments.combine`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kequn.errors import Location
from kequn.header import DefinitionFile

KINDS = ("rule", "sql", "file", "combine")
MATCH_MODES = ("id", "phone", "phone_hash")
SET_OPS = ("union", "intersect", "except")

DEFAULT_MIN_SIZE = 1
"""By default an empty segment fails its size check."""
DEFAULT_MAX_CHANGE_RATIO = 0.5
"""By default a segment whose size moves by more than half in a day fails its change check."""


@dataclass(frozen=True)
class Checks:
    """Bounds checked after each materialisation (blocking asset checks).

    ``min_size``/``max_size`` bound the member count; ``max_change_ratio`` bounds
    ``|size - previous size| / previous size`` against the latest earlier day.
    """

    min_size: int = DEFAULT_MIN_SIZE
    max_size: int | None = None
    max_change_ratio: float | None = DEFAULT_MAX_CHANGE_RATIO


@dataclass(frozen=True)
class SegmentRef:
    """A reference to another segment inside a combine expression."""

    name: str
    location: Location


@dataclass(frozen=True)
class SetOp:
    """``left <op> right`` over segments; ``op`` is union, intersect or except."""

    op: str
    left: CombineExpr
    right: CombineExpr


CombineExpr = SegmentRef | SetOp


@dataclass
class Segment:
    """One segment definition, with every field located in its file."""

    name: str
    kind: str
    owner: str
    description: str
    shared_with: list[str]
    definition: DefinitionFile
    checks: Checks = field(default_factory=Checks)
    rule: str = ""
    rule_location: Location = field(default_factory=Location)
    sql: str = ""
    file: Path | None = None
    match: str = "id"
    column: str = ""
    combine: CombineExpr | None = None
    sync: Any = None

    @property
    def path(self) -> Path:
        return self.definition.path

    @property
    def definition_hash(self) -> str:
        """SHA-256 of the definition text: the asset's code_version."""
        return hashlib.sha256(self.definition.text.encode("utf-8")).hexdigest()[:16]

    def referenced_segments(self) -> list[str]:
        """Names of the segments a combine reads, in order of first appearance."""
        names: list[str] = []

        def walk(node: CombineExpr | None) -> None:
            if isinstance(node, SegmentRef):
                if node.name not in names:
                    names.append(node.name)
            elif isinstance(node, SetOp):
                walk(node.left)
                walk(node.right)

        walk(self.combine)
        return names


@dataclass
class SegmentProject:
    """Every segment under a folder, by name."""

    root: Path
    segments: dict[str, Segment] = field(default_factory=dict)

    def get(self, name: str) -> Segment:
        """The segment called ``name``, or a ValidationError with a did-you-mean hint."""
        from kequn.errors import ValidationError, did_you_mean

        if name not in self.segments:
            raise ValidationError(f"unknown segment '{name}'", Location(self.root),
                                  hint=did_you_mean(name, self.segments))
        return self.segments[name]
