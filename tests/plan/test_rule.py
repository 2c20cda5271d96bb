"""Rules: allowed syntax, type checks, located errors, and agreement with a plain filter.

A rule is checked by the project model (the expression language and its type checker)
and compiled by :func:`plan.segments.rule_query`; ``compile_rule`` below runs both, as
the loader and the plan do for a segment file.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from kequn.errors import KequnError, KequnErrors, raise_collected
from plan.segments import rule_query
from project.expressions import (
    check_condition,
    leaf_conditions,
    parse_expression,
    referenced_names,
    unknown_names,
)
from tests.segments.conftest import DAY2, TAG_TYPES, WIDE_ROWS


def compile_rule(text: str, types: dict[str, str] | None, *, path: Path | None = None,
                 source: str | None = None, offset: int = 0) -> SimpleNamespace:
    """Parse, check (names, then types) and compile a rule written at ``offset`` of ``source``."""
    source = source if source is not None else text
    node = parse_expression(source, path, offset, offset + len(text))
    if types is not None:
        raise_collected(unknown_names(node, types, path, source))
        check_condition(node, types, path, source)
    condition, query = rule_query(node)
    return SimpleNamespace(condition=condition, query=query, tags=list(referenced_names(node)))

COLUMNS = ["as_of", "customer_id", "credit_granted", "drawn", "overdue", "overdue_days",
           "registered_days", "city", "credit_limit", "first_drawn_date", "granted_not_drawn"]


def run(wide: Path, rule: str) -> set[int]:
    compiled = compile_rule(rule, TAG_TYPES)
    con = duckdb.connect(str(wide), read_only=True)
    try:
        rows = con.execute(compiled.query.sql(dialect="duckdb"), {"as_of": DAY2}).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def python_filter(predicate) -> set[int]:
    out = set()
    for row in WIDE_ROWS:
        values = dict(zip(COLUMNS, row, strict=True))
        if values["as_of"] == DAY2 and predicate(values) is True:
            out.add(values["customer_id"])
    return out


@pytest.mark.parametrize(("rule", "predicate"), [
    ("credit_granted AND NOT drawn", lambda v: v["credit_granted"] and not v["drawn"]),
    ("overdue OR registered_days < 20",
     lambda v: (v["overdue"] or v["registered_days"] < 20) if v["overdue"] is not None
     else (True if v["registered_days"] < 20 else None)),
    ("city IN ('Shanghai', 'Wuhan')", lambda v: v["city"] in ("Shanghai", "Wuhan")
     if v["city"] is not None else None),
    ("registered_days BETWEEN 31 AND 100", lambda v: 31 <= v["registered_days"] <= 100),
    ("overdue_days IS NULL", lambda v: v["overdue_days"] is None),
    ("overdue_days IS NOT NULL AND overdue_days >= 10", lambda v: v["overdue_days"] is not None
     and v["overdue_days"] >= 10),
    ("city IS NULL", lambda v: v["city"] is None),
    ("credit_limit > 7999.5", lambda v: v["credit_limit"] is not None
     and v["credit_limit"] > 7999.5),
    ("first_drawn_date < DATE '2025-01-01'", lambda v: v["first_drawn_date"] is not None
     and v["first_drawn_date"].isoformat() < "2025-01-01"),
    ("first_drawn_date >= '2025-01-01'", lambda v: v["first_drawn_date"] is not None
     and v["first_drawn_date"].isoformat() >= "2025-01-01"),
    ("NOT (credit_granted AND drawn) AND registered_days <> 10",
     lambda v: not (v["credit_granted"] and v["drawn"]) and v["registered_days"] != 10),
    ("granted_not_drawn = TRUE", lambda v: v["granted_not_drawn"] is True),
])
def test_rule_members_equal_a_plain_python_filter(wide: Path, rule: str, predicate) -> None:
    assert run(wide, rule) == python_filter(predicate)


def test_compiled_query_reads_the_wide_table_for_the_day_and_lists_tags() -> None:
    compiled = compile_rule("granted_not_drawn AND NOT overdue AND registered_days >= 30",
                            TAG_TYPES)
    assert compiled.tags == ["granted_not_drawn", "overdue", "registered_days"]
    assert compiled.query.sql(dialect="duckdb") == (
        'SELECT customer_id FROM tags.customer_tags WHERE as_of = $as_of AND '
        '("granted_not_drawn" AND NOT "overdue" AND "registered_days" >= 30)')
    assert "`overdue`" in compiled.query.sql(dialect="spark")


ALLOWED = ("(allowed: AND, OR, NOT, + - * / %, comparisons, IN (...), BETWEEN, "
           "IS [NOT] NULL, CASE, COALESCE, GREATEST, LEAST, ABS)")


def errors_of(rule: str, types=TAG_TYPES) -> list[str]:
    with pytest.raises(KequnError) as info:
        compile_rule(rule, types)
    found = info.value.errors if isinstance(info.value, KequnErrors) else [info.value]
    return [e.headline() for e in found]


def test_unknown_tag_is_located_with_a_suggestion() -> None:
    assert errors_of("credit_grantd AND drawn") == [
        "<input>:1:1: unknown tag 'credit_grantd' (did you mean 'credit_granted'?)"]


def test_errors_are_located_in_the_definition_file() -> None:
    source = "SEGMENT (\n  rule 'drawn AND\n    overdue_dayz > 1',\n);\n"
    offset = source.index("'drawn") + 1
    text = source[offset:source.index("',")]
    with pytest.raises(KequnErrors) as info:
        compile_rule(text, TAG_TYPES, path=Path("s.sql"), source=source, offset=offset)
    assert info.value.errors[0].headline() == (
        "s.sql:3:5: unknown tag 'overdue_dayz' (did you mean 'overdue_days'?)")


@pytest.mark.parametrize(("rule", "message"), [
    ("registered_days", "<input>:1:1: 'registered_days' is an integer value, not a condition "
                        "(compare it, e.g. registered_days > 0)"),
    ("city > 3", "<input>:1:8: comparison compares string with integer: '3' is integer"),
    ("drawn = 'yes'", "<input>:1:9: comparison compares boolean with string: 'yes' is string"),
    ("first_drawn_date > 'soon'", "<input>:1:20: comparison compares date with string: "
                                  "'soon' is string"),
    ("overdue_days IN (1, 'x')", "<input>:1:21: IN compares integer with string: 'x' is string"),
    ("lower(city) = 'a'", "<input>:1:1: 'LOWER(city)' is not allowed in an expression over "
                          f"tags {ALLOWED}"),
    ("drawn AND (SELECT 1)", "<input>:1:19: '(SELECT 1)' is not allowed in an expression over "
                             f"tags {ALLOWED}"),
    ("t.drawn", "<input>:1:1: refer to tags by name only, not 't.drawn'"),
])
def test_type_and_syntax_errors(rule: str, message: str) -> None:
    assert errors_of(rule)[0] == message


def test_several_statements_and_unparseable_rules_are_rejected() -> None:
    assert errors_of("drawn; DROP TABLE x") == [
        "<input>:1:6: write one expression (no ';')"]
    assert errors_of("drawn AND (")[0].startswith("<input>:1:")


def test_without_tag_types_names_are_not_checked() -> None:
    assert compile_rule("anything > 3", None).tags == ["anything"]


def test_leaf_conditions_keep_not_with_its_condition() -> None:
    compiled = compile_rule("credit_granted AND NOT overdue AND (city = 'a' OR drawn)",
                            TAG_TYPES)
    assert [c.sql() for c in leaf_conditions(compiled.condition)] == [
        '"credit_granted"', 'NOT "overdue"', "\"city\" = 'a'", '"drawn"']
