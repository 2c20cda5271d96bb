"""The portable subset: SQL that gives the same answer on DuckDB and on Spark (architecture §14).

Definitions are written in DuckDB's dialect; on Spark they are transpiled by sqlglot
(:mod:`plan.spark`). A few constructs transpile *silently wrong* or fail there (measured,
DESIGN §10). :func:`portable_problems` walks every tag query, derived-tag expression, rule
and analyst's SQL of a project and reports each such construct at ``file:line:col`` with
the portable spelling to use instead (``kequn validate --portable``). Each rule is one
small function over one node, listed in :data:`RULES`. Pure: sqlglot only.

>>> import sqlglot
>>> [m for _, m in findings(sqlglot.parse_one("SELECT date_diff('month', a, b)", read="duckdb"))]
["date_diff('month', ...) counts month boundaries on DuckDB but whole months on Spark: \
write (year(b) - year(a)) * 12 + month(b) - month(a) for boundaries, or date_diff('day', a, b)"]
>>> findings(sqlglot.parse_one("SELECT a / NULLIF(b, 0)", read="duckdb"))
[]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from sqlglot import exp

from kequn.errors import KequnError, Location, ValidationError, location_at
from kequn.sqlsource import node_location

Rule = Callable[[exp.Expression], "str | None"]

DAY_UNITS = {"day", "days", "d"}
DOW_PARTS = {"dow", "isodow", "dayofweek", "weekday", "dayofweekiso", "dw"}
ISO_DOW = ("date_diff('day', DATE '2000-01-03', CAST(d AS DATE)) % 7 + 1 "
           "(ISO day of week, 1 = Monday, for days after 2000-01-03)")
KNOWN_ANONYMOUS = {"date_part", "weekday"}


def _unit(node: exp.Expression) -> str:
    unit = node.args.get("unit")
    return (unit.name if unit is not None else "day").lower()


def date_diff_units(node: exp.Expression) -> str | None:
    """``date_diff`` in months, years... counts boundaries on DuckDB, whole units on Spark."""
    if isinstance(node, (exp.DateDiff, exp.DatetimeDiff, exp.TimestampDiff)) and \
            _unit(node) not in DAY_UNITS:
        unit = _unit(node)
        return (f"date_diff('{unit}', ...) counts {unit} boundaries on DuckDB but whole "
                f"{unit}s on Spark: write (year(b) - year(a)) * 12 + month(b) - month(a) for "
                "boundaries, or date_diff('day', a, b)")
    return None


def day_of_week(node: exp.Expression) -> str | None:
    """Day-of-week functions number the days differently on the two engines."""
    hit = isinstance(node, (exp.DayOfWeek, exp.DayOfWeekIso, exp.Dayname))
    if isinstance(node, exp.Extract) and node.name.lower() in DOW_PARTS:
        hit = True
    if isinstance(node, exp.Anonymous) and node.name.lower() in KNOWN_ANONYMOUS:
        first = node.expressions[0] if node.expressions else None
        hit = node.name.lower() == "weekday" or (
            isinstance(first, exp.Literal) and first.this.lower() in DOW_PARTS)
    if isinstance(node, exp.TimeToStr) and "%w" in node.text("format").lower() + \
            str(node.args.get("format")).lower():
        hit = True
    if hit:
        return f"day-of-week numbering differs between DuckDB and Spark: write {ISO_DOW}"
    return None


def ordered_list(node: exp.Expression) -> str | None:
    """``list(x ORDER BY y)`` becomes ``collect_list(x)`` on Spark: the order is lost."""
    if isinstance(node, exp.ArrayAgg):
        return ("list()/array_agg() is not portable (Spark's collect_list loses ORDER BY and "
                "list functions differ): aggregate to a value instead (arg_max(x, y) for the "
                "latest, count(*), min, max, bool_or)")
    if isinstance(node, exp.GroupConcat) and node.find(exp.Order):
        return "string_agg(... ORDER BY ...) is not portable: aggregate to a value instead"
    return None


def list_functions(node: exp.Expression) -> str | None:
    """``len(list)``, ``list_has_any``, ``l[i]``... fail or change meaning on Spark."""
    if isinstance(node, (exp.ArraySize, exp.ArrayOverlaps, exp.ArrayContains, exp.Bracket)):
        return (f"list function {node.sql(dialect='duckdb')[:40]!r} is not portable (fails or "
                "indexes differently on Spark): count the rows instead (count(*), "
                "count(*) FILTER (WHERE ...), bool_or(...))")
    if isinstance(node, exp.Length) and node.this is not None and \
            node.this.find(exp.ArrayAgg, exp.Array) is not None:
        return "len(list) fails on Spark: count the rows instead (count(*))"
    return None


def ordered_aggregates(node: exp.Expression) -> str | None:
    """``quantile_cont`` and ``first(x ORDER BY y)`` fail on Spark."""
    if isinstance(node, (exp.PercentileCont, exp.PercentileDisc, exp.Quantile)):
        return "quantile_cont/percentile fail on Spark: write median(x) or avoid quantiles"
    if isinstance(node, (exp.First, exp.Last)) and node.find(exp.Order):
        return "first(x ORDER BY y) fails on Spark: write arg_min(x, y) (arg_max for the last)"
    return None


def _is_interval(node: exp.Expression | None) -> bool:
    return isinstance(node, exp.Interval)


def date_interval(node: exp.Expression) -> str | None:
    """``DATE ± INTERVAL`` is a TIMESTAMP on DuckDB and a DATE on Spark (unless cast)."""
    if not isinstance(node, (exp.Add, exp.Sub)):
        return None
    if not (_is_interval(node.this) or _is_interval(node.expression)):
        return None
    parent = node.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    if isinstance(parent, exp.Cast):
        return None
    return ("DATE ± INTERVAL is a TIMESTAMP on DuckDB but a DATE on Spark: write "
            "CAST(d - INTERVAL n DAY AS DATE) (or AS TIMESTAMP; $as_of_end for the end of "
            "a tag's day)")


def _is_safe_divisor(divisor: exp.Expression) -> bool:
    divisor = divisor.unnest()
    if isinstance(divisor, exp.Nullif):
        return True
    if isinstance(divisor, exp.Literal) and divisor.is_number:
        return float(divisor.this) != 0
    return False


def _guarded(node: exp.Div) -> bool:
    """Inside ``CASE WHEN y > 0 | y <> 0 | y != 0 THEN ... x / y ...``."""
    divisor = node.expression.unnest().sql(dialect="duckdb")
    child: exp.Expression = node
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.If) and child is parent.args.get("true"):
            condition = parent.this
            for cmp in condition.find_all(exp.GT, exp.NEQ):
                if cmp.this.unnest().sql(dialect="duckdb") == divisor and \
                        isinstance(cmp.expression, exp.Literal) and cmp.expression.this == "0":
                    return True
        child, parent = parent, parent.parent
    return False


def division(node: exp.Expression) -> str | None:
    """Division by zero is ``inf`` on DuckDB and an error on Spark (ANSI mode)."""
    if isinstance(node, exp.IntDiv):
        return "// is not portable: write CAST(floor(x / NULLIF(y, 0)) AS BIGINT)"
    if isinstance(node, exp.Div) and not _is_safe_divisor(node.expression) and \
            not _guarded(node):
        return ("division by zero is inf on DuckDB but an error on Spark: write "
                "x / NULLIF(y, 0), or guard it with CASE WHEN y <> 0 THEN x / y END")
    return None


def unknown_function(node: exp.Expression) -> str | None:
    """A function sqlglot does not know is copied as is: it may not exist on Spark."""
    if isinstance(node, exp.Anonymous) and node.name.lower() not in KNOWN_ANONYMOUS:
        return (f"function {node.name}() is not in the portable subset (sqlglot cannot "
                "translate it for Spark): use a standard function")
    return None


RULES: tuple[Rule, ...] = (date_diff_units, day_of_week, ordered_list, list_functions,
                           ordered_aggregates, date_interval, division, unknown_function)
"""Every rule of the portable subset, in the order they are tried on a node."""


def findings(node: exp.Expression) -> list[tuple[exp.Expression, str]]:
    """Every ``(node, message)`` outside the portable subset under ``node``, in tree order
    (one message per node: the first rule that matches)."""
    out: list[tuple[exp.Expression, str]] = []
    for sub in node.walk():
        for rule in RULES:
            message = rule(sub)
            if message:
                out.append((sub, message))
                break
    return out


def _start(node: exp.Expression) -> int | None:
    starts = [s.meta["start"] for s in node.walk() if s.meta and "start" in s.meta]
    return min(starts) if starts else None


def _where(node: exp.Expression, path: Path | None, source: str) -> Location:
    """Where ``node`` starts. Placeholders and interval literals carry no position: then
    the node's text is searched from the nearest positioned ancestor on."""
    if _start(node) is not None:
        return node_location(node, path, source)
    anchor, parent = None, node.parent
    while parent is not None and anchor is None:
        anchor, parent = _start(parent), parent.parent
    text = node.sql(dialect="duckdb").split(" ")[0]
    found = source.find(text, anchor or 0) if text else -1
    return location_at(path, source, found if found >= 0 else (anchor or 0))


def _located(node: exp.Expression, path: Path | None, source: str) -> Iterator[KequnError]:
    for sub, message in findings(node):
        yield ValidationError(f"not portable to Spark: {message}", _where(sub, path, source))


def portable_problems(project) -> list[KequnError]:
    """Every construct outside the portable subset in ``project``'s tags and segments, each
    located at ``file:line:col`` with the portable spelling in its message."""
    problems: list[KequnError] = []
    for tag in project.tags.values():
        node = tag.query if tag.query is not None else tag.expression
        if node is not None:
            problems.extend(_located(node, tag.path, tag.source_text))
    for segment in project.segments.values():
        text = segment.definition.text
        for node in (segment.condition, segment.query):
            if node is not None:
                problems.extend(_located(node, segment.path, text))
    return problems
