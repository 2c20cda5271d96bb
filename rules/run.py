"""Run a rule for a day: evaluate in DuckDB, decide, write orders and messages, issue coupons.

:func:`run_rule` is what the ``rules/<name>`` asset calls:

1. the compiled query (:mod:`plan.rules`) gives the day's candidates from the warehouse;
   the rules ranked above it in its exclusion group give the customers it must leave;
2. in one serving transaction it reads what is already decided (orders, earlier acts,
   touches planned per customer and day), decides (:func:`rules.decide.decide`), and
   writes the rule's version (first use), the new orders (a ``rule_runs`` row and its
   ``rule_order_rows``, read together as the ``rule_orders`` view) and their
   ``touch_outbox`` messages (state ``pending``, or ``suppressed`` for an opt-out);
3. coupon actions go through the issuance module (its ``Issuer``, handed in by the caller),
   one idempotency key per (rule, version, customer, event, campaign); each order's
   results are written back and it stops being ``pending``.

Re-running a day adds nothing: an order is unique per (rule, customer_id, event_key), and
a crash between 2 and 3 is completed by the next run (the issue keys replay).
:func:`preview_rule` decides the same way and writes nothing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

import duckdb
import polars as pl

from plan.rules import CompiledRule
from project.rule import Rule
from rules.decide import ACTING, Decided, branch_actions, branch_has_coupon, decide, plan_json
from rules.schema import migrate
from rules.stage import Stage
from serving.db import ServingDB, utcnow
from warehouse.db import arrow


class CouponIssuer(Protocol):
    """What a rule needs from the issuance module (its ``Issuer`` fits): idempotent
    issues, one or many in order, each returning an outcome with ``ok``, ``reason``,
    ``coupon_id`` and ``replayed``."""

    def issue(self, campaign: str, customer_id: int, key: str) -> Any: ...

    def issue_many(self, requests: Sequence[tuple[str, int, str]]) -> list[Any]: ...


CAPS_LOCK = 0x6B71_0012
"""PostgreSQL advisory lock serialising rule writes (the caps span every rule)."""
ISSUE_CHUNK = 5_000
"""Pending orders whose coupons are issued per transaction (with their orders' update in
the next): on SQLite a chunk is decided set-based (about 0.1 s of the write lock for
5,000 new coupons; :meth:`issuance.service.Issuer.issue_many`)."""


@dataclass
class RuleReport:
    """What one run of a rule for a day did."""

    rule: str
    day: date
    version: str
    candidates: int = 0
    already_ordered: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    suppressed: int = 0
    coupons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    """Wall seconds by phase: ``evaluate`` (DuckDB), ``decide``, ``write`` (inserts and
    commit), ``issue`` (coupon actions)."""

    def summary(self) -> str:
        """One line for logs and the command line."""
        decided = ", ".join(f"{k} {v}" for k, v in sorted(self.decisions.items())) or "none"
        coupons = ", ".join(f"{k} {v}" for k, v in sorted(self.coupons.items())) or "none"
        return (f"{self.rule} {self.day}: {self.candidates} candidate(s), "
                f"{self.already_ordered} already ordered; new orders: {decided}; "
                f"{self.messages} message(s) ({self.suppressed} suppressed); coupons: {coupons}")


def candidates(con: duckdb.DuckDBPyConnection, compiled: CompiledRule, day: date
               ) -> pl.DataFrame:
    """The rule's candidate rows for ``day`` (its compiled query's result)."""
    return pl.from_arrow(arrow(con, compiled.query, day))  # type: ignore[return-value]


def excluded_customers(con: duckdb.DuckDBPyConnection, compiled: CompiledRule,
                       group: list[CompiledRule], day: date) -> pl.Series | None:
    """Customers a higher-ranked rule of ``compiled``'s exclusion group has on ``day``.

    Rank: higher priority first, then name. Any event of a higher-ranked rule that day
    (acted on or held out) takes the customer.
    """
    rule = compiled.rule
    if rule.exclusion_group is None:
        return None
    above = [c for c in group if c.rule.exclusion_group == rule.exclusion_group
             and (-c.rule.priority, c.rule.name) < (-rule.priority, rule.name)]
    if not above:
        return None
    frames = [candidates(con, c, day).select("customer_id") for c in above]
    return pl.concat(frames)["customer_id"].unique()


_TOUCHES = ("SELECT customer_id, send_day, count(*) FROM touch_outbox "
            "WHERE state <> 'suppressed' AND send_day >= ? AND send_day <= ?{only} "
            "GROUP BY customer_id, send_day")


def _touches(db: ServingDB, days: tuple[date, date], customers: pl.Series
             ) -> list[tuple[object, ...]]:
    """Messages per (customer, send day) in ``days`` (suppressed ones not counted), for
    ``customers`` only: what the caps weigh a day's candidates against.

    The outbox holds every earlier day's messages (~1M a day for a large rule); reading
    all of them to decide a few thousand candidates cost seconds. When there are fewer
    candidates than messages in the window, only their counts are read (their ids bound
    as one parameter, found by the outbox's ``(customer_id, send_day)`` index: rules
    migration 4)."""
    in_window = int(db.scalar("SELECT count(*) FROM touch_outbox WHERE send_day >= ? "
                              "AND send_day <= ?", days) or 0)
    ids = customers.unique()
    if in_window == 0 or ids.is_empty():
        return []
    if ids.len() >= in_window:
        return db.fetchall(_TOUCHES.format(only=""), days)
    return db.fetchall(_TOUCHES.format(only=f" AND customer_id IN ({db.ids_source()})"),
                       (*days, db.ids_param(ids.to_list())))


def _existing(db: ServingDB, rule: Rule, day: date, decided_days: tuple[date, date],
              customers: pl.Series) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    keys = db.fetchall("SELECT customer_id, event_key FROM rule_orders WHERE rule = ? "
                       "AND as_of = ?", (rule.name, day))
    acts = db.scalar("SELECT count(*) FROM rule_order_rows WHERE rule = ? AND decision IN "
                     "('act', 'quiet_delayed')", (rule.name,)) if rule.first_n else 0
    touches = _touches(db, decided_days, customers)
    return (
        pl.DataFrame(keys, schema={"customer_id": pl.Int64, "event_key": pl.Utf8},
                     orient="row"),
        int(acts or 0),
        pl.DataFrame([(int(c), d if isinstance(d, date) else date.fromisoformat(str(d)[:10]),
                       int(n)) for c, d, n in touches],
                     schema={"customer_id": pl.Int64, "send_day": pl.Date, "n": pl.Int64},
                     orient="row"),
    )


def _window(day: date, frame: pl.DataFrame) -> tuple[date, date]:
    """The send days a cap check may need: a week before the day to the last due date."""
    last = day + timedelta(days=400)
    if "due_date" in frame.columns and frame.height:
        latest = frame["due_date"].max()
        if isinstance(latest, date) and latest + timedelta(days=30) > last:
            last = latest + timedelta(days=30)
    return day - timedelta(days=6), last


def decide_for_day(db: ServingDB, rule: Rule, frame: pl.DataFrame, day: date,
                   excluded: pl.Series | None) -> Decided:
    """Read what is already decided and decide the day's new orders (no write)."""
    customers = (frame["customer_id"] if "customer_id" in frame.columns
                 else pl.Series("customer_id", [], pl.Int64))
    keys, acts, touches = _existing(db, rule, day, _window(day, frame), customers)
    return decide(rule, frame, day, existing_keys=keys, prior_acts=acts,
                  existing_touches=touches, excluded=excluded)


def _staged_frames(rule: Rule, decided: Decided, first_order: int, first_message: int
                   ) -> dict[str, pl.DataFrame]:
    """Each new order's and message's per-row values, every one as stored (what is the
    same for the whole write, the rule, version, day and time, is bound once instead), in
    write order: orders by ``seq`` (event key, customer), numbered from ``first_order``;
    messages by order and action, numbered from ``first_message``."""
    own = {b: plan_json(rule, b) if branch_has_coupon(rule, b) else None
           for b in ("then", "else")}
    acting = pl.col("decision").is_in(ACTING)
    actions = pl.lit(None, dtype=pl.Utf8)
    for branch in ("else", "then"):
        if own[branch] is not None:
            actions = pl.when(acting & (pl.col("branch") == branch)).then(
                pl.lit(own[branch])).otherwise(actions)
    order_id = (pl.col("seq").cast(pl.Int64) + first_order).alias("order_id")
    orders = decided.orders.select(
        order_id, "customer_id", "event_key", "decision", actions.alias("actions"), "branch",
        pl.col("pending").cast(pl.Int64))
    messages = decided.messages.select(
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_message).alias("message_id"),
        order_id, pl.col("action_no").cast(pl.Int64), "channel", "customer_id", "text",
        "send_at", "send_day")
    return {"orders": orders, "messages": messages}


def _next_id(db: ServingDB, table: str, column: str) -> int:
    """The id the next row of ``table`` gets: one past the largest (rule writes are
    serialised: SQLite's write lock, PostgreSQL's caps lock)."""
    return int(db.scalar(f"SELECT coalesce(max({column}), 0) FROM {table}") or 0) + 1


_BINDABLE = {"orders": ("event_key", "decision", "actions", "branch", "pending"),
             "messages": ("action_no", "text", "send_at", "send_day")}
"""Per-row columns that are bound once instead of staged when every row has the same
value (a segment trigger's event key, a rule without coupons' NULL actions...)."""


def _bind_constants(table: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``frame`` without its columns that hold one value in every row (of those that may
    be bound), and those values (as Python values, for the driver's adapters)."""
    constants: dict[str, Any] = {}
    if frame.height:
        for name in _BINDABLE[table]:
            column = frame[name]
            first = column[0]
            same = column.is_null().all() if first is None else bool((column == first).all())
            if same:
                constants[name] = first
    return frame.drop(list(constants)), constants


def _copy(db: ServingDB, target: str, columns: Sequence[str], sources: Iterable[str],
          given: dict[str, Any], state: str | None = None) -> None:
    """``INSERT INTO target (columns) SELECT ... FROM source m ORDER BY`` its first
    column, for each of ``sources`` in turn, each column read from the source unless
    ``given`` binds it (``state``: the SQL of the ``state`` column, if any)."""
    params = [given[c] for c in columns if c in given]
    values = ", ".join("?" if c in given else state if c == "state" and state else f"m.{c}"
                       for c in columns)
    for source in sources:
        db.execute(f"INSERT INTO {target} ({', '.join(columns)}) SELECT {values} "
                   f"FROM {source} m ORDER BY m.{columns[0]}", params)


_ORDER_COLUMNS = ("order_id", "run_id", "rule", "customer_id", "event_key", "decision",
                  "actions", "branch", "pending")
_MESSAGE_COLUMNS = ("message_id", "order_id", "action_no", "rule", "channel", "customer_id",
                    "text", "send_at", "send_day", "state", "attempts")


def _write(db: ServingDB, rule: Rule, day: date, decided: Decided, stage: Stage) -> int:
    """Insert the version, its plans, the orders and messages (inside the caller's
    transaction); returns the messages suppressed by an opt-out.

    The day's rows are new (``decided`` left out what is already ordered, read in this
    transaction), so they go in with plain INSERTs; the unique key still guards. The
    write is one run (``rule_runs``: rule, version, day, time, and its orders' id range);
    orders and messages are numbered on from the largest ids so far, so a message knows
    its order's id before either is written. Each table is filled by one ``INSERT ...
    SELECT`` from a staging table (:class:`Stage`) holding the per-row values that
    differ between rows (what every row shares, the rule, version, day, time, and any
    column with one value throughout, is bound once instead), in the order of the unique
    key (event key, customer), so the B-trees grow by appending. An acting order's
    ``actions`` is NULL (= its branch's plan in ``rule_plans``) unless it issues a
    coupon, whose per-order results are kept in the row. A message to an opted-out
    customer and channel is written ``suppressed``.
    """
    now = utcnow().isoformat(" ")
    version = rule.version_hash
    db.execute("INSERT INTO rule_versions (rule, version_hash, text, first_used_at) "
               "VALUES (?, ?, ?, ?) ON CONFLICT (rule, version_hash) DO NOTHING",
               (rule.name, version, rule.definition.text, now))
    branches = ("then", "else") if rule.otherwise is not None else ("then",)
    db.executemany("INSERT INTO rule_plans (rule, version_hash, branch, actions) "
                   "VALUES (?, ?, ?, ?) ON CONFLICT (rule, version_hash, branch) DO NOTHING",
                   [(rule.name, version, b, plan_json(rule, b)) for b in branches])
    if decided.orders.is_empty():
        return 0
    first_order = _next_id(db, "rule_order_rows", "order_id")
    run_id = _next_id(db, "rule_runs", "run_id")
    db.execute("INSERT INTO rule_runs (run_id, rule, version_hash, as_of, created_at, "
               "first_order_id, last_order_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (run_id, rule.name, version, day, now, first_order,
                first_order + decided.orders.height - 1))
    frames = _staged_frames(rule, decided, first_order,
                            _next_id(db, "touch_outbox", "message_id"))
    given = {"orders": {"run_id": run_id, "rule": rule.name},
             "messages": {"rule": rule.name, "attempts": 0}}
    for table in list(frames):
        if frames[table].is_empty():
            del frames[table]
            continue
        frames[table], constants = _bind_constants(table, frames[table])
        given[table].update(constants)
    stage.load(frames)
    _copy(db, "rule_order_rows", _ORDER_COLUMNS, stage.parts("orders"), given["orders"])
    if "messages" not in frames:
        return 0
    messages = list(stage.parts("messages"))
    opted = bool(db.scalar("SELECT count(*) FROM touch_opt_out"))
    where_opted = ("EXISTS (SELECT 1 FROM touch_opt_out x WHERE x.customer_id = "
                   "m.customer_id AND x.channel = m.channel)")
    suppressed = sum(int(db.scalar(f"SELECT count(*) FROM {part} m WHERE {where_opted}") or 0)
                     for part in messages) if opted else 0
    state = f"CASE WHEN {where_opted} THEN 'suppressed' ELSE 'pending' END" if opted \
        else "'pending'"
    _copy(db, "touch_outbox", _MESSAGE_COLUMNS, messages, given["messages"], state)
    return suppressed


def issue_pending(db: ServingDB, issuer: CouponIssuer, rule: str, day: date) -> Counter[str]:
    """Apply the coupon actions of ``rule``'s pending orders of ``day`` through the Issuer;
    returns results by outcome (``issued``, ``replayed``, ``refused:<reason>``)."""
    results: Counter[str] = Counter()
    rows = db.fetchall("SELECT customer_id, event_key, version_hash, actions FROM "
                       "rule_orders WHERE rule = ? AND as_of = ? AND pending = 1 "
                       "ORDER BY event_key, customer_id", (rule, day))
    for start in range(0, len(rows), ISSUE_CHUNK):
        chunk = [(customer, event_key, version, json.loads(actions_text))
                 for customer, event_key, version, actions_text in rows[start:start + ISSUE_CHUNK]]
        wanted = [(action, (action["campaign"], int(customer),
                            f"rule:{rule}:{version}:{int(customer)}:{event_key}:"
                            f"{action['campaign']}"))
                  for customer, event_key, version, actions in chunk for action in actions
                  if action["action"] == "issue_coupon"]
        outcomes = issuer.issue_many([request for _, request in wanted])
        for (action, _), outcome in zip(wanted, outcomes, strict=True):
            if outcome.ok:
                action["result"] = "issued"
                action["coupon_id"] = outcome.coupon_id
                results["replayed" if outcome.replayed else "issued"] += 1
            else:
                action["result"] = f"refused:{outcome.reason}"
                results[f"refused:{outcome.reason}"] += 1
        updates = [(json.dumps(actions, ensure_ascii=False), rule, event_key, int(customer))
                   for customer, event_key, _, actions in chunk]
        with db.transaction():
            db.executemany("UPDATE rule_order_rows SET actions = ?, pending = 0 WHERE "
                           "rule = ? AND event_key = ? AND customer_id = ?", updates)
    return results


def decide_and_write(db: ServingDB, rule: Rule, frame: pl.DataFrame, day: date,
                     excluded: pl.Series | None = None, *,
                     phases: dict[str, float] | None = None) -> tuple[Decided, int]:
    """In one serving transaction (PostgreSQL: under the caps lock), decide the day's new
    orders from ``frame`` (the rule's candidates) and write them; returns the decision
    and the number of messages suppressed by an opt-out. Rows already ordered are left
    as they are, so calling it again with the same or more candidates adds only the new.
    ``phases`` (if given) gets the wall seconds of ``decide`` and ``write`` (with commit)."""
    phases = {} if phases is None else phases
    with closing(Stage(db)) as stage, db.bulk_cache(), db.transaction():
        started = time.perf_counter()
        if db.dialect == "postgresql":
            db.execute("SELECT pg_advisory_xact_lock(?)", (CAPS_LOCK,))
        decided = decide_for_day(db, rule, frame, day, excluded)
        phases["decide"] = time.perf_counter() - started
        suppressed = _write(db, rule, day, decided, stage)
    phases["write"] = time.perf_counter() - started - phases["decide"]
    return decided, suppressed


def run_rule(con: duckdb.DuckDBPyConnection, db: ServingDB, issuer: CouponIssuer | None,
             compiled: CompiledRule, day: date, *, group: list[CompiledRule] = ()
             ) -> RuleReport:
    """Evaluate ``compiled`` for ``day`` and write its orders; see the module docstring.

    ``group``: every compiled rule (those of the same exclusion group are consulted).
    ``issuer`` may be None only for a rule without coupon actions.
    """
    started = time.perf_counter()
    rule = compiled.rule
    migrate(db)
    frame = candidates(con, compiled, day)
    excluded = excluded_customers(con, compiled, list(group), day)
    report = RuleReport(rule.name, day, rule.version_hash, candidates=frame.height)
    report.phases["evaluate"] = time.perf_counter() - started
    decided, report.suppressed = decide_and_write(db, rule, frame, day, excluded,
                                                  phases=report.phases)
    report.already_ordered = decided.skipped
    report.decisions = decided.counts()
    report.messages = decided.messages.height
    if rule.campaigns:
        if issuer is None:
            raise ValueError(f"rule {rule.name} issues coupons: an Issuer is needed")
        issuing = time.perf_counter()
        report.coupons = issue_pending(db, issuer, rule.name, day)
        report.phases["issue"] = time.perf_counter() - issuing
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class Preview:
    """What a rule would do for a day, written nowhere."""

    rule: str
    day: date
    candidates: int
    already_ordered: int
    decisions: dict[str, int]
    actions: dict[str, int]
    """Planned actions by ``issue_coupon <campaign>`` / ``touch <channel>``."""
    sample: list[dict]


def preview_rule(con: duckdb.DuckDBPyConnection, db: ServingDB | None,
                 compiled: CompiledRule, day: date, *, group: list[CompiledRule] = (),
                 sample: int = 5) -> Preview:
    """Decide ``compiled`` for ``day`` as :func:`run_rule` would, writing nothing.

    Without a serving database nothing is taken as decided yet (no caps consumed)."""
    rule = compiled.rule
    frame = candidates(con, compiled, day)
    excluded = excluded_customers(con, compiled, list(group), day)
    if db is not None and db.has_table("rule_orders"):
        decided = decide_for_day(db, rule, frame, day, excluded)
    else:
        decided = decide(rule, frame, day, excluded=excluded)
    actions: Counter[str] = Counter()
    acting = decided.orders.filter(pl.col("decision").is_in(ACTING))
    for branch, n in acting.group_by("branch").len().iter_rows():
        for action in branch_actions(rule, str(branch)):
            label = (f"issue_coupon {action.campaign}" if action.kind == "issue_coupon"
                     else f"touch {action.channel}")
            actions[label] += int(n)
    rows = decided.messages.head(sample).to_dicts()
    return Preview(rule.name, day, frame.height, decided.skipped, decided.counts(),
                   dict(sorted(actions.items())), rows)
