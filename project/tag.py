"""The TAG kind: one tag per file, ``tags/<category_l1>/<name>.sql`` (architecture §4).

A file holds a ``TAG (...)`` header (:data:`FIELDS`) followed by either a SELECT (an
*atomic* tag, checked by :mod:`project.tag_query`) or an expression over other tags (a
*derived* tag; it may also be given as the ``expression`` key). :func:`build_tag` turns
one parsed file into a :class:`Tag`, appending every problem it finds; the checks that
need the other tags (references, types, cycles) are in :mod:`project.references`.

>>> parse_value("false", "boolean"), parse_value("0", "integer")
(False, 0)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlglot import exp
from sqlglot.errors import TokenError
from sqlglot.tokens import Tokenizer, TokenType

from kequn.errors import KequnError, Location, ValidationError, did_you_mean
from kequn.header import DefinitionFile, HeaderField
from project import fields as f
from project.expressions import VALUE_TYPES, parse_expression, parse_field, referenced_names
from project.tag_query import check_query, query_tables, source_table

SQL_TYPES = {
    "boolean": "BOOLEAN",
    "integer": "BIGINT",
    "decimal": "DECIMAL(18,4)",
    "string": "VARCHAR",
    "date": "DATE",
}
"""The DuckDB column type each value type is stored as."""

RESERVED_NAMES = ("as_of", "customer_id")
"""Columns of ``tags.customer_tags`` that no tag may be named after."""
DEFAULT_MAX_COVERAGE_CHANGE = 0.5

DefaultValue = bool | int | Decimal | str | date | None

SAMPLE = """TAG (
  name credit_granted,
  title 'Credit granted',
  description 'An approved credit application decided by the end of the day.',
  owner 'team:credit_risk',
  category_l1 credit,
  category_l2 approval,
  value_type boolean,
  default false,
);
SELECT customer_id, bool_or(decision = 'APPROVED') AS credit_granted
FROM raw.credit_applications
WHERE decided_at < $as_of_end
GROUP BY customer_id"""


def _value_type(item: HeaderField) -> str:
    value = f.text(item)
    if value not in VALUE_TYPES:
        raise ValidationError(f"unknown value_type '{value}' (one of {', '.join(VALUE_TYPES)})",
                              item.value_location, hint=did_you_mean(value, VALUE_TYPES))
    return value


def _bound(item: HeaderField) -> Decimal:
    value = f.text(item)
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValidationError(f"{item.key} {value!r} is not a number",
                              item.value_location) from None


def _max_change(item: HeaderField) -> float:
    value = f.text(item)
    try:
        ratio = float(value)
    except ValueError:
        ratio = -1.0
    if ratio <= 0:
        raise ValidationError(f"max_coverage_change {value!r} is not a positive ratio (e.g. 0.5)",
                              item.value_location)
    return ratio


FIELDS: tuple[f.Field, ...] = (
    f.Field("name", f.name("tag"), required=True),
    f.Field("title", f.text, required=True),
    f.Field("description", f.text, required=True),
    f.Field("owner", f.team, required=True, help="the owning department, team:<dept>"),
    f.Field("category_l1", f.text, required=True),
    f.Field("category_l2", f.text, required=True),
    f.Field("value_type", _value_type, required=True),
    f.Field("default", f.raw, help="value for customers without a row (else NULL)"),
    f.Field("expression", f.raw, help="a derived tag's expression (instead of a body)"),
    f.Field("values", f.items, default=[], help="allowed values of a string tag"),
    f.Field("min", _bound), f.Field("max", _bound),
    f.Field("max_coverage_change", _max_change, default=DEFAULT_MAX_COVERAGE_CHANGE),
)


@dataclass(frozen=True)
class Domain:
    """The values a tag may take beyond its type: allowed strings or a numeric range."""

    values: tuple[str, ...] = ()
    minimum: Decimal | None = None
    maximum: Decimal | None = None

    def is_open(self) -> bool:
        """True when nothing beyond the type is declared."""
        return not self.values and self.minimum is None and self.maximum is None


@dataclass(frozen=True, eq=False)
class Tag:
    """One loaded, validated tag definition."""

    name: str
    title: str
    description: str
    owner: str
    category_l1: str
    category_l2: str
    value_type: str
    kind: str
    """``atomic`` (a SELECT over raw.*) or ``derived`` (an expression over tags)."""
    definition_hash: str
    path: Path
    depends_on: tuple[str, ...] = ()
    """Tag names a derived tag reads (empty for atomic tags)."""
    source: str | None = None
    """``schema.table`` an atomic tag reads from (its FROM table), None for derived tags."""
    tables: tuple[str, ...] = ()
    """Every ``schema.table`` an atomic tag's query reads."""
    default: DefaultValue = None
    """Value for customers without a row (None: NULL, "does not apply")."""
    domain: Domain = field(default_factory=Domain)
    max_coverage_change: float = DEFAULT_MAX_COVERAGE_CHANGE
    """Largest relative day-over-day coverage move the coverage check accepts."""
    query: exp.Query | None = None
    """Atomic: the parsed SELECT, ``$as_of``/``$as_of_end`` placeholders still in place."""
    expression: exp.Expression | None = None
    """Derived: the parsed expression over other tag names (columns)."""
    body_location: Location = field(default_factory=Location)
    source_text: str = ""
    """The file's text (what the expression's positions refer to)."""
    name_location: Location = field(default_factory=Location)

    @property
    def sql_type(self) -> str:
        """The DuckDB type of the tag's column."""
        return SQL_TYPES[self.value_type]

    @property
    def category(self) -> str:
        """``category_l1/category_l2``."""
        return f"{self.category_l1}/{self.category_l2}"


def parse_value(text: str, value_type: str) -> DefaultValue:
    """A header value as a Python value of ``value_type``; ValueError when it isn't one."""
    if value_type == "boolean":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise ValueError("write true or false")
        return lowered == "true"
    if value_type == "integer":
        return int(text)
    if value_type == "decimal":
        try:
            return Decimal(text)
        except InvalidOperation as err:
            raise ValueError("not a number") from err
    if value_type == "date":
        return date.fromisoformat(text)
    return text


def build_tag(d: DefinitionFile, values: f.Values, errors: list[KequnError],
              root: Path) -> Tag | None:
    """Turn one parsed TAG file (under the tags folder ``root``) into a Tag.

    Every problem is appended to ``errors``; returns None when there was any.
    """
    before = len(errors)
    name = values["name"] or d.path.stem
    value_type = values["value_type"] or ""
    _check_place(d, values, root, errors)
    default = _default(values, value_type, errors)
    domain = _domain(d, values, value_type, errors)

    query: exp.Query | None = None
    expression: exp.Expression | None = None
    if values.given("expression"):
        item: HeaderField = d.fields["expression"]
        if not d.body_is_empty():
            errors.append(ValidationError(
                "a tag with an 'expression' key takes no SQL body", d.body_location))
        try:
            expression = parse_field(d, item)
        except KequnError as err:
            errors.append(err)
    elif d.body_is_empty():
        errors.append(ValidationError(
            "the tag has neither a SELECT nor an expression after its header",
            d.body_location, hint="atomic tags end with a SELECT; derived tags with an "
            "expression over other tags"))
    elif _starts_query(d.body):
        try:
            query = check_query(d, name)
        except KequnError as err:
            errors.append(err)
    else:
        try:
            expression = parse_expression(d.body.rstrip().rstrip(";"), d.path)
        except KequnError as err:
            errors.append(err)
    if len(errors) > before or not value_type:
        return None
    kind = "atomic" if query is not None else "derived"
    normal = (query or expression).sql(dialect="duckdb")  # type: ignore[union-attr]
    digest = hashlib.sha256(json.dumps(
        [name, kind, value_type, str(default), normal, list(domain.values),
         str(domain.minimum), str(domain.maximum)]).encode()).hexdigest()[:16]
    return Tag(
        name=name, title=values["title"], description=values["description"],
        owner=values["owner"], category_l1=values["category_l1"],
        category_l2=values["category_l2"], value_type=value_type, kind=kind,
        definition_hash=digest, path=d.path,
        depends_on=referenced_names(expression) if expression is not None else (),
        source=source_table(query) if query is not None else None,
        tables=query_tables(query) if query is not None else (), default=default,
        domain=domain, max_coverage_change=values["max_coverage_change"], query=query,
        expression=expression,
        body_location=d.location("expression") if values.given("expression")
        else d.body_location,
        source_text=d.text, name_location=d.location("name"),
    )


def _check_place(d: DefinitionFile, values: f.Values, root: Path,
                 errors: list[KequnError]) -> None:
    """The name is not reserved, and file and folder agree with name and category_l1."""
    name = values["name"]
    folder = d.path.parent.relative_to(root).parts if d.path.is_relative_to(root) else None
    if name is not None:
        if name in RESERVED_NAMES:
            errors.append(ValidationError(f"'{name}' is reserved for a column of "
                                          "tags.customer_tags", d.location("name")))
        elif folder is not None and name != d.path.stem:
            errors.append(ValidationError(
                f"tag '{name}' must live in a file named {name}.sql, not {d.path.name}",
                d.location("name")))
    l1 = values["category_l1"]
    if folder and l1 and folder[0] != l1:
        errors.append(ValidationError(
            f"category_l1 '{l1}' does not match the folder '{folder[0]}'",
            d.location("category_l1")))


def _default(values: f.Values, value_type: str, errors: list[KequnError]) -> DefaultValue:
    item: HeaderField | None = values["default"]
    if item is None or not value_type:
        return None
    try:
        return parse_value(item.value, value_type)  # type: ignore[arg-type]
    except ValueError as err:
        errors.append(ValidationError(f"default {item.value!r} is not a {value_type}: {err}",
                                      item.value_location))
        return None


def _domain(d: DefinitionFile, values: f.Values, value_type: str,
            errors: list[KequnError]) -> Domain:
    allowed = tuple(values["values"])
    if allowed and value_type and value_type != "string":
        errors.append(ValidationError("'values' lists allowed strings; use min/max for "
                                      f"a {value_type} tag", d.location("values")))
    for key in ("min", "max"):
        if values.given(key) and value_type and value_type not in ("integer", "decimal"):
            errors.append(ValidationError(f"'{key}' applies to integer and decimal tags",
                                          d.location(key)))
    return Domain(allowed, values["min"], values["max"])


def _starts_query(body: str) -> bool:
    try:
        tokens = Tokenizer(dialect="duckdb").tokenize(body)
    except TokenError:
        return True  # let the SQL parser report it
    while tokens and tokens[0].token_type == TokenType.L_PAREN:
        tokens = tokens[1:]
    return bool(tokens) and tokens[0].token_type in (TokenType.SELECT, TokenType.WITH,
                                                     TokenType.FROM)
