"""Why a customer is in or out of a segment on a day (``kequn segments explain``).

For a rule, each atomic condition is evaluated on the customer's row of
``tags.customer_tags`` and shown with the tag values it reads, true/false/NULL,
alongside the whole rule's verdict. For a combine, each referenced segment's
membership is shown; for SQL and file segments, membership and (for files) the
imported row. Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import duckdb
from sqlglot import exp

from kequn.errors import ExecutionError
from plan.division import exact_division
from plan.segments import CompiledSegment
from project.combine import render
from project.expressions import leaf_conditions
from warehouse.db import table_exists


@dataclass(frozen=True)
class ConditionResult:
    """One condition of a rule, the customer's tag values it reads and its value."""

    condition: str
    values: dict[str, object]
    result: bool | None


@dataclass
class Explanation:
    """The verdict and the reasons."""

    segment: str
    customer_id: int
    as_of: date
    member: bool | None
    conditions: list[ConditionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        """Human-readable lines: verdict, then each condition or note."""
        verdict = {True: "is a member of", False: "is not a member of",
                   None: "has no recorded membership in"}[self.member]
        lines = [f"customer {self.customer_id} {verdict} segment '{self.segment}' "
                 f"on business day {self.as_of}"]
        for c in self.conditions:
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in c.values.items())
            mark = {True: "true ", False: "false", None: "NULL "}[c.result]
            lines.append(f"  [{mark}] {c.condition}    ({shown})")
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)


def _fmt(value: object) -> str:
    return "NULL" if value is None else str(value)


def _in_members(con: duckdb.DuckDBPyConnection, segment: str, customer_id: int,
                as_of: date) -> bool | None:
    if not table_exists(con, "segments", "members"):
        return None
    row = con.execute("SELECT count(*) FROM segments.members WHERE segment = ? AND as_of = ? "
                      "AND customer_id = ?", [segment, as_of, customer_id]).fetchone()
    return bool(row[0])


def explain(con: duckdb.DuckDBPyConnection, compiled: CompiledSegment, customer_id: int,
            as_of: date) -> Explanation:
    """Explain ``customer_id``'s membership of ``compiled`` on ``as_of``."""
    segment = compiled.segment
    out = Explanation(segment.name, customer_id, as_of, None)
    if segment.kind == "rule":
        assert compiled.condition is not None
        if not table_exists(con, "tags", "customer_tags"):
            raise ExecutionError("tags.customer_tags does not exist; build the tags first")
        leaves = leaf_conditions(compiled.condition)
        select = exp.select(
            exp.alias_(exact_division(compiled.condition), "_rule"),
            *[exp.alias_(exact_division(leaf), f"_c{i}") for i, leaf in enumerate(leaves)],
            *[exp.column(t, quoted=True) for t in compiled.tags],
        ).from_(exp.table_("customer_tags", db="tags")).where(
            "as_of = $as_of AND customer_id = $customer_id")
        cursor = con.execute(select.sql(dialect="duckdb"),
                             {"as_of": as_of, "customer_id": customer_id})
        row = cursor.fetchone()
        if row is None:
            out.notes.append(f"no row in tags.customer_tags for this customer on {as_of} "
                             "(not registered yet, or tags not built for that day)")
            out.member = False
            return out
        values = dict(zip(compiled.tags, row[1 + len(leaves):], strict=True))
        out.member = bool(row[0])
        for i, leaf in enumerate(leaves):
            used = {c.name: values.get(c.name) for c in leaf.find_all(exp.Column)}
            out.conditions.append(ConditionResult(_plain(leaf), used, row[1 + i]))
        out.notes.append(f"rule: {segment.rule}")
        if row[0] is None:
            out.notes.append("the rule is NULL for this customer (a NULL tag), which counts "
                             "as not a member")
        return out
    out.member = _in_members(con, segment.name, customer_id, as_of)
    if out.member is None:
        out.notes.append("no members materialised yet")
    if segment.kind == "combine":
        for child in compiled.segments:
            flag = _in_members(con, child, customer_id, as_of)
            out.notes.append(f"{child}: {'member' if flag else 'not a member'}")
        assert segment.combine is not None
        out.notes.append(f"expression: {render(segment.combine)}")
    elif segment.kind == "file" and table_exists(con, "segments", "imported"):
        row = con.execute("SELECT row_no FROM segments.imported WHERE segment = ? AND "
                          "customer_id = ?", [segment.name, customer_id]).fetchone()
        out.notes.append(f"imported from row {row[0]} of the uploaded file" if row
                         else "not in the imported file (or not matched)")
    elif segment.kind == "sql":
        out.notes.append("analyst SQL: membership as materialised for the day")
    return out


def _plain(node: exp.Expression) -> str:
    copy = node.copy()
    for ident in copy.find_all(exp.Identifier):
        ident.set("quoted", False)
    return copy.sql(dialect="duckdb")
