"""Load a folder of tag definition files into a validated :class:`TagProject`.

One tag per file, ``<tags_dir>/<category_l1>/<name>.sql``: a ``TAG ( ... );`` header
(kequn.header) followed by either a SELECT (atomic tag) or an expression over other
tags (derived tag; the expression may also be given as the ``expression`` key).
Every problem of every file is collected and raised together as
:class:`~kequn.errors.KequnErrors`, each located at ``file:line:col``.

This module is pure: it imports neither DuckDB nor Dagster.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.errors import TokenError
from sqlglot.tokens import Tokenizer, TokenType

from kequn.errors import (
    KequnError,
    Location,
    ParseError,
    ValidationError,
    did_you_mean,
    location_at,
    raise_collected,
)
from kequn.header import DefinitionFile, read_definition_file
from tags.derived import (
    clean_description,
    fits,
    infer_type,
    node_location,
    parse_error_location,
    parse_expression,
    references,
)
from tags.model import VALUE_TYPES, DefaultValue, Domain, Tag, TagProject

SAMPLE_HEADER = """TAG (
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

REQUIRED_KEYS = ("name", "title", "description", "owner", "category_l1", "category_l2",
                 "value_type")
OPTIONAL_KEYS = ("default", "expression", "values", "min", "max", "max_coverage_change")
ALLOWED_KEYS = {"TAG": set(REQUIRED_KEYS) | set(OPTIONAL_KEYS)}
PLACEHOLDERS = ("as_of", "as_of_end")
"""``$as_of`` is the day D (DATE); ``$as_of_end`` is D + 1 day (TIMESTAMP)."""
RAW_SCHEMA = "raw"
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
TEAM = re.compile(r"^team:[a-z][a-z0-9_-]*$")
RESERVED_NAMES = ("as_of", "customer_id")
ALLOWED_STATEMENTS = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery,
                      exp.CTE, exp.With)
FORBIDDEN_NODES = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Command,
                   exp.Alter, exp.Merge, exp.Copy)


def load_tags(tags_dir: Path) -> TagProject:
    """Read, parse and validate every ``*.sql`` under ``tags_dir``.

    Returns the tags in dependency order (atomic first, each derived tag after the
    tags it reads). Raises :class:`~kequn.errors.KequnErrors` listing every problem.
    """
    tags_dir = Path(tags_dir)
    if not tags_dir.is_dir():
        raise ValidationError("the tags folder does not exist", Location(tags_dir))
    errors: list[KequnError] = []
    loaded: list[Tag] = []
    broken: set[str] = set()
    for path in sorted(tags_dir.rglob("*.sql")):
        try:
            tag = _load_file(path, tags_dir, errors)
        except KequnError as err:
            errors.append(err)
            tag = None
        if tag is not None:
            loaded.append(tag)
        else:
            broken.add(path.stem)
    tags = _check_project(loaded, errors, tags_dir, broken)
    raise_collected(errors)
    return TagProject(tags_dir, tags)


def _load_file(path: Path, tags_dir: Path, errors: list[KequnError]) -> Tag | None:
    definition = read_definition_file(path, {"TAG": SAMPLE_HEADER}, ALLOWED_KEYS)
    folder = path.parent.relative_to(tags_dir).parts
    return _build_tag(definition, folder, errors)


def _build_tag(d: DefinitionFile, folder: tuple[str, ...] | None,
               errors: list[KequnError]) -> Tag | None:
    """Turn one parsed file into a Tag, appending every problem found to ``errors``."""
    before = len(errors)
    values: dict[str, str] = {}
    missing = [key for key in REQUIRED_KEYS if not d.has(key)]
    if missing:
        errors.append(ValidationError(
            f"TAG header has no {', '.join(repr(k) for k in missing)}",
            d.kind_location, hint="required: " + ", ".join(REQUIRED_KEYS)))
    for key in (*REQUIRED_KEYS, "default", "expression", "min", "max", "max_coverage_change"):
        if d.has(key):
            try:
                values[key] = d.string(key)
            except KequnError as err:
                errors.append(err)
    name = values.get("name", d.path.stem)
    _check_name(d, values, folder, errors)
    if "owner" in values and not TEAM.match(values["owner"]):
        errors.append(ValidationError(
            f"owner '{values['owner']}' is not a team; write it as 'team:<department>'",
            d.location("owner")))
    value_type = values.get("value_type", "")
    if value_type and value_type not in VALUE_TYPES:
        errors.append(ValidationError(
            f"unknown value_type '{value_type}' (one of {', '.join(VALUE_TYPES)})",
            d.location("value_type"), hint=did_you_mean(value_type, VALUE_TYPES)))
        value_type = ""
    default = _default(d, values, value_type, errors)
    domain = _domain(d, values, value_type, errors)
    change = _max_change(d, values, errors)

    query: exp.Query | None = None
    expression: exp.Expression | None = None
    if "expression" in values:
        if not d.body_is_empty():
            errors.append(ValidationError(
                "a tag with an 'expression' key takes no SQL body", d.body_location))
        start = d.fields["expression"].value_location
        offset = _offset(d.text, start) + (1 if d.fields["expression"].quoted else 0)
        padded = _blank(d.text[:offset]) + values["expression"]
        try:
            expression = parse_expression(padded, d.path, d.text)
        except KequnError as err:
            errors.append(err)
    elif d.body_is_empty():
        errors.append(ValidationError(
            "the tag has neither a SELECT nor an expression after its header",
            d.body_location, hint="atomic tags end with a SELECT; derived tags with an "
            "expression over other tags"))
    elif _starts_query(d.body):
        try:
            query = _parse_query(d, name)
        except KequnError as err:
            errors.append(err)
    else:
        try:
            expression = parse_expression(d.body.rstrip().rstrip(";"), d.path, d.text)
        except KequnError as err:
            errors.append(err)
    if len(errors) > before:
        return None
    assert value_type
    kind = "atomic" if query is not None else "derived"
    tables = _tables(query) if query is not None else ()
    source = _source_table(query) if query is not None else None
    normal = (query or expression).sql(dialect="duckdb")  # type: ignore[union-attr]
    digest = hashlib.sha256(json.dumps(
        [name, kind, value_type, str(default), normal, list(domain.values),
         str(domain.minimum), str(domain.maximum)]).encode()).hexdigest()[:16]
    return Tag(
        name=name, title=values["title"], description=values["description"],
        owner=values["owner"], category_l1=values["category_l1"],
        category_l2=values["category_l2"], value_type=value_type, kind=kind,
        definition_hash=digest, path=d.path,
        depends_on=tuple(dict.fromkeys(c.name.lower() for c in references(expression)))
        if expression is not None else (),
        source=source, tables=tables, default=default, domain=domain,
        max_coverage_change=change, query=query, expression=expression,
        body_location=d.body_location if "expression" not in values
        else d.location("expression"),
    )


def _check_name(d: DefinitionFile, values: dict[str, str], folder: tuple[str, ...] | None,
                errors: list[KequnError]) -> None:
    name = values.get("name")
    if name is None:
        return
    if not SNAKE.match(name):
        errors.append(ValidationError(
            f"tag name '{name}' is not snake_case (lowercase letters, digits, '_')",
            d.location("name")))
    elif name in RESERVED_NAMES:
        errors.append(ValidationError(f"'{name}' is reserved for a column of "
                                      "tags.customer_tags", d.location("name")))
    elif folder is not None and name != d.path.stem:
        errors.append(ValidationError(
            f"tag '{name}' must live in a file named {name}.sql, not {d.path.name}",
            d.location("name")))
    l1 = values.get("category_l1")
    if folder is not None and l1 and folder and folder[0] != l1:
        errors.append(ValidationError(
            f"category_l1 '{l1}' does not match the folder '{folder[0]}'",
            d.location("category_l1")))


def _default(d: DefinitionFile, values: dict[str, str], value_type: str,
             errors: list[KequnError]) -> DefaultValue:
    text = values.get("default")
    if text is None or not value_type:
        return None
    try:
        return parse_value(text, value_type)
    except ValueError as err:
        errors.append(ValidationError(f"default {text!r} is not a {value_type}: {err}",
                                      d.location("default")))
        return None


def parse_value(text: str, value_type: str) -> DefaultValue:
    """A header value as a Python value of ``value_type``; ValueError when it isn't one.

    >>> parse_value("false", "boolean"), parse_value("0", "integer")
    (False, 0)
    """
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


def _domain(d: DefinitionFile, values: dict[str, str], value_type: str,
            errors: list[KequnError]) -> Domain:
    allowed = tuple(d.strings("values"))
    if allowed and value_type and value_type != "string":
        errors.append(ValidationError("'values' lists allowed strings; use min/max for "
                                      f"a {value_type} tag", d.location("values")))
    bounds: dict[str, Decimal | None] = {}
    for key in ("min", "max"):
        bounds[key] = None
        if key not in values:
            continue
        if value_type and value_type not in ("integer", "decimal"):
            errors.append(ValidationError(f"'{key}' applies to integer and decimal tags",
                                          d.location(key)))
            continue
        try:
            bounds[key] = Decimal(values[key])
        except InvalidOperation:
            errors.append(ValidationError(f"{key} {values[key]!r} is not a number",
                                          d.location(key)))
    return Domain(allowed, bounds["min"], bounds["max"])


def _max_change(d: DefinitionFile, values: dict[str, str], errors: list[KequnError]) -> float:
    text = values.get("max_coverage_change")
    if text is None:
        return 0.5
    try:
        ratio = float(text)
    except ValueError:
        ratio = -1.0
    if ratio <= 0:
        errors.append(ValidationError(
            f"max_coverage_change {text!r} is not a positive ratio (e.g. 0.5)",
            d.location("max_coverage_change")))
        return 0.5
    return ratio


def _offset(text: str, where: Location) -> int:
    lines = text.splitlines(keepends=True)
    return sum(len(line) for line in lines[: where.line - 1]) + where.col - 1


def _blank(text: str) -> str:
    return "".join(ch if ch == "\n" else " " for ch in text)


def _starts_query(body: str) -> bool:
    try:
        tokens = Tokenizer(dialect="duckdb").tokenize(body)
    except TokenError:
        return True  # let the SQL parser report it
    while tokens and tokens[0].token_type == TokenType.L_PAREN:
        tokens = tokens[1:]
    return bool(tokens) and tokens[0].token_type in (TokenType.SELECT, TokenType.WITH,
                                                     TokenType.FROM)


def _parse_query(d: DefinitionFile, name: str) -> exp.Query:
    """Parse the SELECT body and check what it may read and what it returns."""
    try:
        statements = [s for s in sqlglot.parse(d.body, read="duckdb") if s is not None]
    except SqlglotParseError as err:
        first = err.errors[0] if err.errors else {}
        desc = clean_description(first.get("description") or str(err))
        raise ParseError(f"SQL does not parse: {desc}",
                         parse_error_location(first, d.path, d.text)) from err
    except TokenError as err:
        raise ParseError(f"SQL does not parse: {err}", d.body_location) from err
    if len(statements) != 1:
        where = node_location(statements[1], d.path, d.text) if len(statements) > 1 \
            else d.body_location
        raise ValidationError("a tag file holds exactly one SELECT", where)
    query = statements[0]
    if not isinstance(query, exp.Query):
        raise ValidationError("an atomic tag's body must be a SELECT", d.body_location)
    for node in query.walk():
        if isinstance(node, FORBIDDEN_NODES):
            raise ValidationError("a tag query may only read (SELECT)",
                                  node_location(node, d.path, d.text))
    _check_placeholders(query, d)
    _check_tables(query, d)
    _check_outputs(query, d, name)
    return query


def _check_placeholders(query: exp.Query, d: DefinitionFile) -> None:
    for node in query.find_all(exp.Placeholder):
        key = node.name
        if key not in PLACEHOLDERS:
            offset = d.text.find(f"${key}")
            where = location_at(d.path, d.text, offset) if offset >= 0 else d.body_location
            raise ValidationError(
                f"unknown placeholder '${key}' (use $as_of or $as_of_end)", where,
                hint=did_you_mean(key, PLACEHOLDERS))


def _cte_names(query: exp.Expression) -> set[str]:
    return {cte.alias_or_name for cte in query.find_all(exp.CTE)}


def _check_tables(query: exp.Query, d: DefinitionFile) -> None:
    ctes = _cte_names(query)
    for table in query.find_all(exp.Table):
        if not table.db and table.name in ctes:
            continue
        if not isinstance(table.this, exp.Identifier) or table.db.lower() != RAW_SCHEMA \
                or table.catalog:
            raise ValidationError(
                f"tag queries read raw.<table> only, not '{table.sql(dialect='duckdb')}'",
                node_location(table, d.path, d.text))


def _check_outputs(query: exp.Query, d: DefinitionFile, name: str) -> None:
    select = query
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select):
        return
    projections = select.expressions
    if not projections:
        raise ValidationError(f"the query must return customer_id and {name}",
                              node_location(select, d.path, d.text))
    outputs = [p.alias_or_name.lower() for p in projections]
    if any(isinstance(p, exp.Star) or (p.find(exp.Star) and not p.find(exp.Count))
           for p in projections):
        raise ValidationError(
            f"list the columns: the query must return customer_id and {name}",
            node_location(projections[0], d.path, d.text))
    if sorted(outputs) == sorted(["customer_id", name]):
        return
    wanted = {"customer_id", name}
    wrong = next((p for p, out in zip(projections, outputs, strict=True)
                  if out not in wanted or outputs.count(out) > 1), projections[-1])
    shown = ", ".join(o or "?" for o in outputs)
    message = (f"the query must return exactly customer_id and {name}, "
               f"but returns {shown}")
    alias = wrong.alias_or_name.lower()
    hint = did_you_mean(alias, [name]) if alias and alias not in wanted else ""
    raise ValidationError(message, node_location(wrong, d.path, d.text), hint=hint)


def _tables(query: exp.Query) -> tuple[str, ...]:
    ctes = _cte_names(query)
    names = [f"{t.db}.{t.name}".lower() for t in query.find_all(exp.Table)
             if t.db or t.name not in ctes]
    return tuple(dict.fromkeys(names))


def _source_table(query: exp.Query) -> str:
    if isinstance(query, exp.Select):
        source = query.args.get("from_") or query.args.get("from")
        if source is not None and isinstance(source.this, exp.Table) and source.this.db:
            return f"{source.this.db}.{source.this.name}".lower()
    return _tables(query)[0] if _tables(query) else ""


def _check_project(loaded: list[Tag], errors: list[KequnError], root: Path,
                   broken: set[str]) -> dict[str, Tag]:
    """Cross-file rules: duplicates, unknown references, types, cycles; topological order.

    References to tags whose own file failed (``broken``) are not reported again.
    """
    by_name: dict[str, Tag] = {}
    for tag in loaded:
        first = by_name.get(tag.name)
        if first is not None:
            errors.append(ValidationError(
                f"tag '{tag.name}' is defined twice: in {_relative(first.path, root)} "
                f"and in {_relative(tag.path, root)}",
                _name_location(tag)))
            continue
        by_name[tag.name] = tag
    types = {name: tag.value_type for name, tag in by_name.items()}
    good: dict[str, Tag] = {}
    for tag in by_name.values():
        if tag.kind == "atomic":
            good[tag.name] = tag
            continue
        assert tag.expression is not None
        source = tag.path.read_text(encoding="utf-8") if tag.path.exists() else ""
        problems = False
        for column in references(tag.expression):
            ref = column.name.lower()
            if ref in broken and ref not in by_name:
                problems = True
            elif ref not in by_name:
                problems = True
                errors.append(ValidationError(
                    f"unknown tag '{ref}' in the expression of '{tag.name}'",
                    node_location(column, tag.path, source),
                    hint=did_you_mean(ref, by_name)))
            elif ref == tag.name:
                problems = True
                errors.append(ValidationError(f"tag '{tag.name}' refers to itself",
                                              node_location(column, tag.path, source)))
        if problems:
            continue
        try:
            inferred = infer_type(tag.expression, types, tag.path, source)
        except KequnError as err:
            errors.append(err)
            continue
        if not fits(inferred, tag.value_type):
            errors.append(ValidationError(
                f"the expression is {inferred} but '{tag.name}' declares value_type "
                f"{tag.value_type}", node_location(tag.expression, tag.path, source)))
            continue
        good[tag.name] = tag
    return _topological(good, errors)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _name_location(tag: Tag) -> Location:
    source = tag.path.read_text(encoding="utf-8") if tag.path.exists() else ""
    match = re.search(rf"\bname\s+'?{re.escape(tag.name)}\b", source)
    return location_at(tag.path, source, match.start() + source[match.start():].find(
        tag.name)) if match else Location(tag.path)


def _topological(tags: dict[str, Tag], errors: list[KequnError]) -> dict[str, Tag]:
    """Atomic tags first, then derived tags after their inputs; cycles are errors."""
    ordered: dict[str, Tag] = {t.name: t for t in tags.values() if t.kind == "atomic"}
    state: dict[str, str] = {}

    def visit(name: str, stack: list[str]) -> bool:
        if name in ordered:
            return True
        tag = tags.get(name)
        if tag is None:
            return False  # an input that failed validation: reported already
        if state.get(name) == "visiting":
            cycle = [*stack[stack.index(name):], name]
            source = tag.path.read_text(encoding="utf-8") if tag.path.exists() else ""
            nxt = cycle[1]
            column = next(c for c in references(tag.expression) if c.name.lower() == nxt)
            errors.append(ValidationError(
                f"derived tags form a cycle: {' -> '.join(cycle)}",
                node_location(column, tag.path, source)))
            return False
        if state.get(name) == "failed":
            return False
        state[name] = "visiting"
        ok = all([visit(dep, [*stack, name]) for dep in tag.depends_on])
        state[name] = "done" if ok else "failed"
        if ok:
            ordered[name] = tag
        return ok

    for name in sorted(t.name for t in tags.values() if t.kind == "derived"):
        visit(name, [])
    return ordered
