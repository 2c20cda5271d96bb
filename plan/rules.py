"""One compiled query per marketing rule (pure: sqlglot trees, no DuckDB, no Dagster).

A rule's query returns one row per (customer, event) of its trigger on the day bound to
``$as_of``, joined to the customer's tags as of that day, with:

* ``customer_id``, ``event_key`` (what makes an order unique: ``loan:<id>``,
  ``segment:<name>:<day>``...), ``branch`` (``then`` or ``else``), ``holdout_bucket``
  (MD5-based, 0..9999, the same number as :func:`project.rule.holdout_bucket`);
* ``due_date`` when an action is timed on it, and every field a template reads.

In the binary form only matching rows are returned; in the ternary form every event is,
with ``branch`` saying which actions apply. Trigger SQL is kequn's own text; the only
values from a definition (segment and campaign names, the window, the offset) enter as
literals in the tree, and the condition is the parsed expression with its columns
qualified (event fields from the event, tags from the wide table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlglot
from sqlglot import exp

from kequn.tables import CUSTOMER_TAGS, MATERIALIZATIONS, MEMBERS, qualified
from plan.params import as_of
from project.campaign import Campaign
from project.rule import ALWAYS, Rule

EVENT = "ev"
TAGS = "t"

_LOAN_FIELDS = """
  l.customer_id, 'loan:' || CAST(l.loan_id AS VARCHAR) AS event_key, l.loan_id, l.principal,
  l.term_months, l.channel AS loan_channel, l.asset_party, l.funding_party, i.due_date,
  i.amount_due
FROM raw.loans AS l
LEFT JOIN raw.installments AS i ON i.loan_id = l.loan_id AND i.installment_no = 1
WHERE l.disbursed_at >= CAST($as_of AS TIMESTAMP) AND l.disbursed_at < $as_of_end"""

_EARLIER_LOAN = """
  AND NOT EXISTS (SELECT 1 FROM raw.loans AS p WHERE p.customer_id = l.customer_id
    AND p.disbursed_at >= $window_start
    AND (p.disbursed_at < l.disbursed_at
         OR (p.disbursed_at = l.disbursed_at AND p.loan_id < l.loan_id)))"""

_INSTALLMENT_FIELDS = """
  l.customer_id, i.loan_id, i.installment_no, i.due_date, i.amount_due"""

TRIGGER_SQL = {
    "drawdown": "SELECT" + _LOAN_FIELDS,
    "first_drawdown": "SELECT" + _LOAN_FIELDS + _EARLIER_LOAN,
    "first_drawdown_in_campaign": "SELECT" + _LOAN_FIELDS + """
  AND l.disbursed_at >= $window_start AND l.disbursed_at < $window_end""" + _EARLIER_LOAN,
    "credit_granted": """SELECT a.customer_id,
  'application:' || CAST(a.application_id AS VARCHAR) AS event_key, a.application_id,
  a.credit_limit AS granted_limit, a.credit_method
FROM raw.credit_applications AS a
WHERE a.decision = 'APPROVED' AND a.decided_at >= CAST($as_of AS TIMESTAMP)
  AND a.decided_at < $as_of_end""",
    "repayment": "SELECT" + _INSTALLMENT_FIELDS + """,
  'repayment:' || CAST(i.loan_id AS VARCHAR) || ':' || CAST(i.installment_no AS VARCHAR)
    AS event_key,
  GREATEST(date_diff('day', i.due_date, CAST(i.paid_at AS DATE)), 0) AS days_late
FROM raw.installments AS i JOIN raw.loans AS l ON l.loan_id = i.loan_id
WHERE i.paid_at >= CAST($as_of AS TIMESTAMP) AND i.paid_at < $as_of_end""",
    "installment_due": "SELECT" + _INSTALLMENT_FIELDS + """,
  'due:' || CAST(i.loan_id AS VARCHAR) || ':' || CAST(i.installment_no AS VARCHAR) || ':'
    || CAST($offset AS VARCHAR) AS event_key
FROM raw.installments AS i JOIN raw.loans AS l ON l.loan_id = i.loan_id
WHERE i.due_date = CAST($as_of AS DATE) - CAST($offset AS INTEGER)
  AND (i.paid_at IS NULL OR i.paid_at >= $as_of_end)""",
    "segment": """SELECT m.customer_id,
  'segment:' || $segment || ':' || CAST($as_of AS VARCHAR) AS event_key
FROM segments.members AS m
WHERE m.segment = $segment AND m.as_of = $as_of
  AND NOT EXISTS (SELECT 1 FROM segments.members AS p WHERE p.segment = $segment
    AND p.customer_id = m.customer_id
    AND p.as_of = (SELECT max(x.as_of) FROM segments.materializations AS x
                   WHERE x.segment = $segment AND x.as_of < $as_of))""",
    "schedule": """SELECT c.customer_id, 'day:' || CAST($as_of AS VARCHAR) AS event_key
FROM tags.customer_tags AS c WHERE c.as_of = $as_of""",
}
"""Each trigger's events for the day: ``customer_id``, ``event_key`` and its fields."""

TRIGGER_TABLES = {
    "drawdown": ["raw.loans", "raw.installments"],
    "first_drawdown": ["raw.loans", "raw.installments"],
    "first_drawdown_in_campaign": ["raw.loans", "raw.installments"],
    "credit_granted": ["raw.credit_applications"],
    "repayment": ["raw.installments", "raw.loans"],
    "installment_due": ["raw.installments", "raw.loans"],
    "segment": [qualified(MEMBERS), qualified(MATERIALIZATIONS)],
    "schedule": [qualified(CUSTOMER_TAGS)],
}
"""The tables each trigger reads (for lineage)."""


@dataclass(frozen=True)
class CompiledRule:
    """A rule's query and what it reads."""

    rule: Rule
    query: exp.Query
    tags: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    """Columns beyond the fixed ones: ``due_date`` (if timed on it) and template fields."""

    def sql(self, dialect: str = "duckdb", *, pretty: bool = True) -> str:
        """The query in ``dialect``."""
        return self.query.sql(dialect=dialect, pretty=pretty)


def _literal(value: object) -> exp.Expression:
    if isinstance(value, datetime):
        text = value.replace(tzinfo=None).isoformat(" ")
        return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP"))
    if isinstance(value, int):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def trigger_query(rule: Rule, campaigns: dict[str, Campaign]) -> exp.Query:
    """The trigger's events for ``$as_of``, definition values bound as literals."""
    trigger = rule.trigger
    values: dict[str, object] = {"segment": trigger.argument, "offset": trigger.offset_days}
    if trigger.kind == "first_drawdown_in_campaign":
        campaign = campaigns[trigger.argument]
        values["window_start"] = campaign.window_start
        values["window_end"] = campaign.window_end
    else:
        values["window_start"] = datetime(1900, 1, 1)
    tree = sqlglot.parse_one(TRIGGER_SQL[trigger.kind], read="duckdb")

    def bind(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name in values:
            return _literal(values[node.name])
        return node

    return tree.transform(bind)


def holdout_bucket_sql(rule_name: str) -> exp.Expression:
    """``CAST('0x' || left(md5('<rule>:' || customer_id), 8) AS UBIGINT) % 10000``."""
    key = exp.DPipe(this=exp.Literal.string(f"{rule_name}:"),
                    expression=exp.cast(exp.column("customer_id", table=EVENT), "VARCHAR"))
    hexed = exp.DPipe(this=exp.Literal.string("0x"),
                      expression=exp.Left(this=exp.MD5(this=key),
                                          expression=exp.Literal.number(8)))
    return exp.Mod(this=exp.cast(hexed, exp.DataType.build("UBIGINT", dialect="duckdb")),
                   expression=exp.Literal.number(10000))


def _qualified(node: exp.Expression, event_fields: dict[str, str]) -> exp.Expression:
    """``node`` with each column read from the event or from the tags."""
    node = node.copy()
    for column in list(node.find_all(exp.Column)):
        name = column.name.lower()
        source = EVENT if name in event_fields or name in ALWAYS else TAGS
        column.replace(exp.column(exp.to_identifier(name, quoted=True), table=source))
    return node


def compile_rule(rule: Rule, campaigns: dict[str, Campaign]) -> CompiledRule:
    """The query of a loaded (checked) rule, and what it reads."""
    events = rule.event_fields
    wanted = list(dict.fromkeys([*(["due_date"] if rule.needs_due_date else []),
                                 *rule.placeholders]))
    wanted = [w for w in wanted if w not in ("customer_id", "as_of")]
    condition = _qualified(rule.condition, events)
    matched = exp.func("COALESCE", exp.paren(condition), exp.false())
    branch = exp.Case().when(matched.copy(), exp.Literal.string("then")).else_(
        exp.Literal.string("else"))
    columns: list[exp.Expression] = [
        exp.column("customer_id", table=EVENT),
        exp.column("event_key", table=EVENT),
        exp.alias_(branch, "branch"),
        exp.alias_(holdout_bucket_sql(rule.name), "holdout_bucket"),
    ]
    for name in wanted:
        source = EVENT if name in events else TAGS
        columns.append(exp.alias_(exp.column(exp.to_identifier(name, quoted=True), table=source),
                                  name, quoted=True))
    join_on = exp.and_(
        exp.EQ(this=exp.column("as_of", table=TAGS), expression=as_of()),
        exp.EQ(this=exp.column("customer_id", table=TAGS),
               expression=exp.column("customer_id", table=EVENT)))
    query = (exp.select(*columns)
             .from_(trigger_query(rule, campaigns).subquery(EVENT))
             .join(exp.table_(CUSTOMER_TAGS[1], db=CUSTOMER_TAGS[0], alias=TAGS),
                   on=join_on, join_type="left"))
    if rule.otherwise is None:
        query = query.where(matched)
    query = query.order_by(exp.column("event_key", table=EVENT),
                           exp.column("customer_id", table=EVENT))
    tables = list(dict.fromkeys([*TRIGGER_TABLES[rule.trigger.kind], qualified(CUSTOMER_TAGS)]))
    return CompiledRule(rule, query, tags=list(rule.tags), tables=tables, fields=wanted)


def compile_rules(rules: dict[str, Rule], campaigns: dict[str, Campaign]
                  ) -> dict[str, CompiledRule]:
    """Every usable rule compiled."""
    return {name: compile_rule(rule, campaigns) for name, rule in rules.items()}
