"""A rule's versions (as first used) with diffs, and its orders for a day.

``rule_versions`` keeps the text of every version of a rule file the first time it
decided anything; orders link to their version by ``version_hash``.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import date, datetime

from rules.decide import ACTING
from serving.db import ServingDB


@dataclass(frozen=True)
class Version:
    """One version of a rule: its hash, text, first use and how many orders it made."""

    version_hash: str
    text: str
    first_used_at: datetime
    orders: int
    diff: str
    """Unified diff from the previous version ('' for the first)."""


def versions(db: ServingDB, rule: str) -> list[Version]:
    """Every version of ``rule``, oldest first, each with its diff from the one before."""
    rows = db.fetchall(
        "SELECT v.version_hash, v.text, v.first_used_at, (SELECT count(*) FROM rule_orders o "
        "WHERE o.rule = v.rule AND o.version_hash = v.version_hash) FROM rule_versions v "
        "WHERE v.rule = ? ORDER BY v.first_used_at, v.version_hash", (rule,))
    found: list[Version] = []
    previous: str | None = None
    for version_hash, text, first_used, orders in rows:
        diff = "" if previous is None else "".join(difflib.unified_diff(
            previous.splitlines(keepends=True), str(text).splitlines(keepends=True),
            fromfile=found[-1].version_hash, tofile=str(version_hash)))
        found.append(Version(str(version_hash), str(text), first_used, int(orders), diff))
        previous = str(text)
    return found


@dataclass(frozen=True)
class Order:
    """One rule order as stored."""

    order_id: int
    customer_id: int
    event_key: str
    decision: str
    version_hash: str
    actions: list[dict]


def orders(db: ServingDB, rule: str, day: date, *, limit: int | None = None) -> list[Order]:
    """``rule``'s orders of ``day``, by customer and event, each with its actions: the
    order's own document (coupon results) or else, for an order that acted, its version
    and branch's plan from ``rule_plans`` (none for control, capped or excluded)."""
    sql = ("SELECT order_id, customer_id, event_key, decision, version_hash, actions, branch "
           "FROM rule_orders WHERE rule = ? AND as_of = ? ORDER BY customer_id, event_key")
    params: tuple = (rule, day)
    if limit is not None:
        sql += " LIMIT ?"
        params = (rule, day, limit)
    plans = {(str(v), str(b)): str(a) for v, b, a in db.fetchall(
        "SELECT version_hash, branch, actions FROM rule_plans WHERE rule = ?", (rule,))
    } if db.has_table("rule_plans") else {}
    found = []
    for o, c, k, d, v, a, b in db.fetchall(sql, params):
        if a is None:
            a = plans.get((str(v), str(b)), "[]") if str(d) in ACTING else "[]"
        found.append(Order(int(o), int(c), str(k), str(d), str(v), json.loads(a)))
    return found


def decision_counts(db: ServingDB, rule: str, day: date | None = None) -> dict[str, int]:
    """Orders by decision, of one day or all days."""
    sql = "SELECT decision, count(*) FROM rule_orders WHERE rule = ?"
    params: tuple = (rule,)
    if day is not None:
        sql += " AND as_of = ?"
        params = (rule, day)
    rows = db.fetchall(sql + " GROUP BY decision ORDER BY decision", params)
    return {str(d): int(n) for d, n in rows}
