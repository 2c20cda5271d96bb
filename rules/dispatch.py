"""Deliver due messages from the touch outbox, each once, with bounded retries.

:func:`dispatch` is one pass of a dispatcher (the ``touch_dispatch`` Dagster job runs
it on a schedule; several may run at once):

1. **claim**, in one transaction: due ``pending`` messages (``send_at <= now``) that no
   live lease holds get ``claimed_by = <worker>``, ``lease_until = now + lease`` and one
   more attempt. On SQLite the transaction holds the write lock; on PostgreSQL the rows
   are taken with ``FOR UPDATE SKIP LOCKED``. Either way no two dispatchers claim the
   same message while a lease lives. An opted-out customer's message becomes
   ``suppressed`` here instead;
2. **deliver** each claimed message through its channel's adapter (outside any
   transaction);
3. **settle**, per message: ``sent`` (with ``sent_at``), or back to ``pending`` with a
   back-off lease after a failure, or ``failed`` once ``max_attempts`` are used. Only
   the holder of the claim may settle it. Every attempt is logged in ``touch_attempts``.

A dispatcher killed between 1 and 3 leaves its claims to expire: another dispatcher
takes them after the lease (a message may then be delivered again only if the first
delivery happened and was not acknowledged; adapters receive a key that is the same
for the same rule, customer, event and action, :func:`rules.channels.delivery_key`).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rules.channels import Adapter, Message, delivery_key
from serving.db import ServingDB, utcnow

DEFAULT_LEASE_S = 300
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BATCH = 500
BACKOFF_S = 60


def worker_id() -> str:
    """A name for this dispatcher: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class DispatchReport:
    """What one dispatch pass did."""

    worker: str
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs."""
        return (f"claimed {self.claimed}: sent {self.sent}, retry later {self.retried}, "
                f"failed {self.failed}; suppressed {self.suppressed} (opted out)")


def _claim(db: ServingDB, worker: str, now: datetime, lease_s: int, batch: int
           ) -> tuple[list[Message], int]:
    """Claim due messages, each with its delivery key; returns them and how many were
    suppressed instead."""
    lock = " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""
    with db.transaction():
        rows = db.fetchall(
            "SELECT message_id, order_id, action_no, channel, customer_id, text, send_at, rule "
            "FROM touch_outbox WHERE state = 'pending' AND send_at <= ? AND "
            f"(lease_until IS NULL OR lease_until <= ?) ORDER BY send_at, message_id LIMIT ?{lock}",
            (now, now, batch))
        if not rows:
            return [], 0
        opted = {(int(c), str(ch)) for c, ch in db.fetchall(
            "SELECT customer_id, channel FROM touch_opt_out WHERE customer_id IN "
            f"({db.ids_source()})", (db.ids_param(int(r[4]) for r in rows),))}
        suppressed = [(r[0],) for r in rows if (int(r[4]), str(r[3])) in opted]
        claimed = [r for r in rows if (int(r[4]), str(r[3])) not in opted]
        if suppressed:
            db.executemany("UPDATE touch_outbox SET state = 'suppressed' WHERE message_id = ?",
                           suppressed)
        db.executemany(
            "UPDATE touch_outbox SET claimed_by = ?, lease_until = ?, attempts = attempts + 1 "
            "WHERE message_id = ? AND state = 'pending'",
            [(worker, now + timedelta(seconds=lease_s), r[0]) for r in claimed])
        events = dict(db.fetchall(
            "SELECT order_id, event_key FROM rule_order_rows WHERE order_id IN "
            f"({db.ids_source()})", (db.ids_param(int(r[1]) for r in claimed),))
        ) if claimed else {}
    messages = [Message(int(m), str(ch), int(c), str(t), s, str(rule),
                        delivery_key(str(rule), int(c), str(events.get(o, "")), int(n)))
                for m, o, n, ch, c, t, s, rule in claimed]
    return messages, len(suppressed)


def _settle(db: ServingDB, worker: str, message: Message, error: str | None,
            now: datetime, max_attempts: int) -> str:
    """Record the attempt and the message's new state; returns it ('' if not ours)."""
    with db.transaction():
        row = db.fetchone("SELECT attempts, claimed_by FROM touch_outbox WHERE message_id = ?",
                          (message.message_id,))
        if row is None or row[1] != worker:
            return ""
        attempts = int(row[0])
        db.execute("INSERT INTO touch_attempts (message_id, attempt, at, worker, ok, detail) "
                   "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                   (message.message_id, attempts, now, worker, int(error is None), error))
        if error is None:
            state = "sent"
            db.execute("UPDATE touch_outbox SET state = 'sent', sent_at = ?, lease_until = NULL, "
                       "last_error = NULL WHERE message_id = ?", (now, message.message_id))
        elif attempts >= max_attempts:
            state = "failed"
            db.execute("UPDATE touch_outbox SET state = 'failed', lease_until = NULL, "
                       "last_error = ? WHERE message_id = ?", (error, message.message_id))
        else:
            state = "pending"
            db.execute("UPDATE touch_outbox SET lease_until = ?, last_error = ? "
                       "WHERE message_id = ?",
                       (now + timedelta(seconds=BACKOFF_S * attempts), error,
                        message.message_id))
    return state


def dispatch(db: ServingDB, adapters: Mapping[str, Adapter], *, now: datetime | None = None,
             worker: str | None = None, lease_s: int = DEFAULT_LEASE_S,
             max_attempts: int = DEFAULT_MAX_ATTEMPTS, batch: int = DEFAULT_BATCH,
             clock: Callable[[], datetime] = utcnow, max_batches: int = 1000
             ) -> DispatchReport:
    """Deliver every message due at ``now`` (naive UTC; default the clock's time).

    Claims up to ``batch`` messages at a time until none is due (or ``max_batches``).
    """
    report = DispatchReport(worker or worker_id())
    for _ in range(max_batches):
        moment = now or clock()
        messages, suppressed = _claim(db, report.worker, moment, lease_s, batch)
        report.suppressed += suppressed
        if not messages and not suppressed:
            break
        report.claimed += len(messages)
        for message in messages:
            error = None
            try:
                adapter = adapters[message.channel]
                adapter.send(message)
            except Exception as exc:  # an adapter may fail in any way; it is logged
                error = f"{type(exc).__name__}: {exc}"[:500]
                report.errors.append(f"{message.message_id}: {error}")
            state = _settle(db, report.worker, message, error, now or clock(), max_attempts)
            if state == "sent":
                report.sent += 1
            elif state == "failed":
                report.failed += 1
            elif state == "pending":
                report.retried += 1
    return report


def opt_out(db: ServingDB, customer_id: int, channel: str) -> None:
    """Record that ``customer_id`` wants no more messages on ``channel``; pending messages
    are suppressed at once (and any later ones when written or claimed)."""
    with db.transaction():
        db.execute("INSERT INTO touch_opt_out (customer_id, channel, created_at) VALUES "
                   "(?, ?, ?) ON CONFLICT DO NOTHING", (customer_id, channel, utcnow()))
        db.execute("UPDATE touch_outbox SET state = 'suppressed' WHERE customer_id = ? AND "
                   "channel = ? AND state = 'pending'", (customer_id, channel))


def outbox_counts(db: ServingDB, rule: str | None = None) -> dict[tuple[str, str], int]:
    """Messages by (channel, state), of one rule or all."""
    where, params = ("WHERE rule = ?", (rule,)) if rule else ("", ())
    rows = db.fetchall(f"SELECT channel, state, count(*) FROM touch_outbox {where} "
                       "GROUP BY channel, state ORDER BY channel, state", params)
    return {(str(c), str(s)): int(n) for c, s, n in rows}
