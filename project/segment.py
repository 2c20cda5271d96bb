"""The SEGMENT kind: one segment per file, ``segments/<name>.sql`` (architecture §5).

A segment has a name, a kind (``rule``, ``sql``, ``file`` or ``combine``), who owns it
and who may target it (``shared_with``), the kind's source, check bounds and, optionally,
sync settings (:mod:`project.sync`). :func:`build_segment` reads one parsed file into a
:class:`Segment`: a rule is parsed (its tags are checked against the tag definitions in
:mod:`project.references`), an analyst's SQL passes the gate (:mod:`project.sql_gate`),
a combine expression is parsed (:mod:`project.combine`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sqlglot import exp

from kequn.errors import KequnError, ValidationError
from kequn.header import DefinitionFile, HeaderField
from project import fields as f
from project import sync
from project.combine import (
    SET_OPS,
    CombineExpr,
    parse_combine_field,
    parse_combine_text,
    referenced_segments,
)
from project.expressions import parse_field, referenced_names
from project.sql_gate import gate, tables_read

KINDS = ("rule", "sql", "file", "combine")
MATCH_MODES = ("id", "phone", "phone_hash")

DEFAULT_MIN_SIZE = 1
"""By default an empty segment fails its size check."""
DEFAULT_MAX_CHANGE_RATIO = 0.5
"""By default a segment whose size moves by more than half in a day fails its change check."""

SAMPLE = """\
-- Granted but never drawn: the wake-up audience.
SEGMENT (
  name wake_up,
  kind rule,
  owner 'team:growth',
  description 'Approved customers who never drew a loan',
  shared_with (team:marketing),
  rule 'credit_granted AND NOT drawn',
);"""

FIELDS: tuple[f.Field, ...] = (
    f.Field("name", f.name("segment"), required=True),
    f.Field("kind", f.choice(KINDS), required=True),
    f.Field("owner", f.team, required=True),
    f.Field("description", f.text, default=""),
    f.Field("shared_with", f.teams, default=[], help="teams allowed to target the segment"),
    f.Field("rule", f.raw, help="kind rule: a condition over tags"),
    f.Field("file", f.text, help="kind file: the uploaded list, relative to the definition"),
    f.Field("match", f.choice(MATCH_MODES), default="id"),
    f.Field("column", f.text, default=""),
    *(f.Field(op, f.items) for op in SET_OPS),
    f.Field("expression", f.raw, help="kind combine: '(a UNION b) EXCEPT c'"),
    f.Field("min_size", f.integer(minimum=0, none=True), default=DEFAULT_MIN_SIZE),
    f.Field("max_size", f.integer(minimum=0, none=True)),
    f.Field("max_change_ratio", f.ratio(), default=DEFAULT_MAX_CHANGE_RATIO),
    *sync.FIELDS,
)


@dataclass(frozen=True)
class Checks:
    """Bounds checked after each materialisation (blocking asset checks).

    ``min_size``/``max_size`` bound the member count; ``max_change_ratio`` bounds
    ``|size - previous size| / previous size`` against the latest earlier day.
    """

    min_size: int = DEFAULT_MIN_SIZE
    max_size: int | None = None
    max_change_ratio: float | None = DEFAULT_MAX_CHANGE_RATIO


@dataclass(frozen=True, eq=False)
class Segment:
    """One segment definition, with every field located in its file."""

    name: str
    kind: str
    owner: str
    description: str
    shared_with: tuple[str, ...]
    definition: DefinitionFile
    checks: Checks = field(default_factory=Checks)
    rule: str = ""
    """kind rule: the condition as written."""
    condition: exp.Expression | None = None
    """kind rule: the parsed condition (positions are file positions)."""
    query: exp.Query | None = None
    """kind sql: the analyst's query, as accepted by the gate."""
    file: Path | None = None
    match: str = "id"
    column: str = ""
    combine: CombineExpr | None = None
    sync: sync.SyncSettings | None = None

    @property
    def path(self) -> Path:
        """The definition file."""
        return self.definition.path

    @property
    def definition_hash(self) -> str:
        """SHA-256 of the definition text: the asset's code_version."""
        return hashlib.sha256(self.definition.text.encode("utf-8")).hexdigest()[:16]

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags a rule reads, in order of first appearance."""
        return referenced_names(self.condition) if self.condition is not None else ()

    @property
    def tables(self) -> list[str]:
        """``schema.table`` names an analyst's query reads."""
        return tables_read(self.query) if self.query is not None else []

    def referenced_segments(self) -> list[str]:
        """Names of the segments a combine reads, in order of first appearance."""
        return referenced_segments(self.combine)


def build_segment(d: DefinitionFile, values: f.Values, errors: list[KequnError],
                  root: Path) -> Segment | None:
    """Turn one parsed SEGMENT file into a Segment; every problem goes to ``errors``."""
    before = len(errors)
    kind = values["kind"]
    checks = _checks(d, values, errors)
    condition = query = combine = file = None
    if kind == "rule":
        condition = _rule(d, values, errors)
    elif kind == "sql":
        if d.body_is_empty():
            errors.append(ValidationError(
                "a sql segment needs a SELECT after the header returning customer_id",
                d.body_location))
        else:
            try:
                query = gate(d.body, d.path, d.text)
            except KequnError as exc:
                errors.append(exc)
    elif kind == "file":
        file = _file(d, values, errors)
    elif kind == "combine":
        combine = _combine(d, values, errors)
    if kind and kind != "sql" and not d.body_is_empty():
        errors.append(ValidationError(f"a {kind} segment has no SQL body; remove the text "
                                      "after the header", d.body_location))
    if kind != "rule" and values.given("rule"):
        errors.append(ValidationError("'rule' only applies to kind rule", d.location("rule")))
    if len(errors) > before or not values.ok("name", "kind", "owner"):
        return None
    rule_item: HeaderField | None = values["rule"]
    return Segment(
        name=values["name"], kind=kind, owner=values["owner"],
        description=values["description"], shared_with=tuple(values["shared_with"]),
        definition=d, checks=checks, rule=rule_item.value if rule_item else "",  # type: ignore[arg-type]
        condition=condition, query=query, file=file, match=values["match"],
        column=values["column"], combine=combine, sync=sync.sync_settings(values),
    )


def _checks(d: DefinitionFile, values: f.Values, errors: list[KequnError]) -> Checks:
    low, high = values["min_size"], values["max_size"]
    if low is not None and high is not None and high < low:
        errors.append(ValidationError(f"max_size {high} is below min_size {low}",
                                      d.location("max_size")))
    return Checks(min_size=low or 0, max_size=high, max_change_ratio=values["max_change_ratio"])


def _rule(d: DefinitionFile, values: f.Values, errors: list[KequnError]) -> exp.Expression | None:
    item: HeaderField | None = values["rule"]
    if item is None:
        if values.ok("rule"):
            errors.append(ValidationError("SEGMENT header has no 'rule'", d.kind_location,
                                          hint="a rule segment needs rule '<condition>'"))
        return None
    try:
        return parse_field(d, item)
    except KequnError as exc:
        errors.append(exc)
        return None


def _file(d: DefinitionFile, values: f.Values, errors: list[KequnError]) -> Path | None:
    if not values.given("file") or not values.ok("file"):
        return None
    path = (d.path.parent / values["file"]).resolve()
    if not path.is_file():
        errors.append(ValidationError(f"file '{values['file']}' does not exist "
                                      f"(looked for {path})", d.location("file")))
    return path


def _combine(d: DefinitionFile, values: f.Values, errors: list[KequnError]) -> CombineExpr | None:
    given = [key for key in (*SET_OPS, "expression") if values.given(key)]
    if len(given) != 1:
        errors.append(ValidationError(
            "a combine segment needs exactly one of union (...), intersect (...), except (...) "
            "or expression '(a UNION b) EXCEPT c'"
            + (f"; found {', '.join(given)}" if given else ""),
            d.location(given[1] if len(given) > 1 else None)))
        return None
    key = given[0]
    if not values.ok(key):
        return None
    try:
        if key == "expression":
            item: HeaderField = values[key]
            return parse_combine_text(str(item.value), d.path, d.text, item.text_offset)
        return parse_combine_field(key, values[key], d.location(key))
    except KequnError as exc:
        errors.append(exc)
        return None
