"""The ``rules`` migration stream: rule versions, orders and the touch outbox (DESIGN §11).

Tables (timestamps naive UTC, days Asia/Shanghai business days):

* ``rule_versions(rule, version_hash, text, first_used_at)``: a rule file's text, kept
  the first time that version decides anything.
* ``rule_orders(order_id, rule, version_hash, as_of, customer_id, event_key, decision,
  actions, created_at, branch, pending)``: one row per application of a rule, unique
  (``rule``, ``customer_id``, ``event_key``), so re-running a day adds nothing.
  ``decision`` in ``act | control | capped | excluded | quiet_delayed``; ``actions`` is
  JSON: the planned actions and their results; ``pending`` = 1 while a coupon action has
  not been applied yet.
* ``touch_outbox(message_id, order_id, rule, channel, customer_id, text, send_at,
  send_day, state, attempts, sent_at, claimed_by, lease_until, last_error)`` with
  ``state`` in ``pending | sent | failed | suppressed``; a dispatcher claims a message by
  setting ``claimed_by``/``lease_until`` in one transaction.
* ``touch_opt_out(customer_id, channel, created_at)``: opted-out customers per channel.
* ``touch_attempts(message_id, attempt, at, ok, detail)``: every delivery attempt.

Migration 2 makes the tables cheap to fill a million rows at a time, keeping every row:
``rule_plans(rule, version_hash, branch, actions)`` holds each branch's planned actions
once per version, and an order's ``actions`` is NULL when it is just that plan (it stays
a per-order JSON document for coupon results); ``rule_orders`` has no index on
``order_id`` (it is derived from the unique key, which lookups use) and its unique key
is ordered ``(rule, event_key, customer_id)``, the order a day's rows are written in;
``touch_outbox`` gets an integer ``id`` (SQLite: the rowid, PostgreSQL: a BIGSERIAL) that
the dispatcher claims by, and its per-customer index becomes one on ``send_day`` (the
caps' window).

Migration 3 makes the ids integers: ``rule_orders.order_id`` and
``touch_outbox.message_id`` are numbers given in write order (each run continues from the
largest so far, under the write lock), ``touch_outbox.order_id`` and
``touch_attempts.message_id`` refer to them, and ``touch_outbox.action_no`` is the
action's number in its branch. The 24-hex-digit order key and the ``<order key>:<action
no>`` message key of before are derived when a message is delivered
(:func:`rules.channels.delivery_key`, the adapters' idempotency key), so they are no
longer written a million times a day: at 1M orders that was a sixth of the bytes
written. On SQLite the rebuilt tables check ``decision`` and ``state`` by ORs of
equalities instead of ``IN`` lists (:func:`kequn.migrations.one_of`: same rule, much
cheaper per row). Existing rows keep every value: orders are numbered in unique-key order,
messages keep their ``id``, and every reference follows.
"""

from __future__ import annotations

from kequn.migrations import Migration, apply_migrations, one_of
from project.rule import DECISIONS
from serving.db import ServingDB

STREAM = "rules"
STATES = ("pending", "sent", "failed", "suppressed")

_VERSIONS = """
CREATE TABLE rule_versions (
    rule VARCHAR(200) NOT NULL,
    version_hash VARCHAR(64) NOT NULL,
    text TEXT NOT NULL,
    first_used_at TIMESTAMP NOT NULL,
    PRIMARY KEY (rule, version_hash)
)
"""

_DECISION_IN = f"decision IN ({', '.join(repr(d) for d in DECISIONS)})"
_STATE_IN = f"state IN ({', '.join(repr(s) for s in STATES)})"

_ORDERS = f"""
CREATE TABLE rule_orders (
    order_id VARCHAR(64) NOT NULL PRIMARY KEY,
    rule VARCHAR(200) NOT NULL,
    version_hash VARCHAR(64) NOT NULL,
    as_of DATE NOT NULL,
    customer_id BIGINT NOT NULL,
    event_key VARCHAR(200) NOT NULL,
    decision VARCHAR(16) NOT NULL CHECK ({_DECISION_IN}),
    actions TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    branch VARCHAR(8) NOT NULL,
    pending SMALLINT NOT NULL DEFAULT 0,
    UNIQUE (rule, customer_id, event_key)
)
"""

_OUTBOX = f"""
CREATE TABLE touch_outbox (
    message_id VARCHAR(80) NOT NULL PRIMARY KEY,
    order_id VARCHAR(64) NOT NULL,
    rule VARCHAR(200) NOT NULL,
    channel VARCHAR(32) NOT NULL,
    customer_id BIGINT NOT NULL,
    text TEXT NOT NULL,
    send_at TIMESTAMP NOT NULL,
    send_day DATE NOT NULL,
    state VARCHAR(16) NOT NULL CHECK ({_STATE_IN}),
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at TIMESTAMP,
    claimed_by VARCHAR(80),
    lease_until TIMESTAMP,
    last_error TEXT
)
"""

_OPT_OUT = """
CREATE TABLE touch_opt_out (
    customer_id BIGINT NOT NULL,
    channel VARCHAR(32) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (customer_id, channel)
)
"""

_ATTEMPTS = """
CREATE TABLE touch_attempts (
    message_id VARCHAR(80) NOT NULL,
    attempt INTEGER NOT NULL,
    at TIMESTAMP NOT NULL,
    worker VARCHAR(80) NOT NULL,
    ok SMALLINT NOT NULL,
    detail TEXT,
    PRIMARY KEY (message_id, attempt)
)
"""

_INDEXES = (
    "CREATE INDEX rule_orders_day ON rule_orders (rule, as_of)",
    "CREATE INDEX touch_outbox_due ON touch_outbox (state, send_at)",
    "CREATE INDEX touch_outbox_customer ON touch_outbox (customer_id, send_day)",
)

_PLANS = """
CREATE TABLE rule_plans (
    rule VARCHAR(200) NOT NULL,
    version_hash VARCHAR(64) NOT NULL,
    branch VARCHAR(8) NOT NULL,
    actions TEXT NOT NULL,
    PRIMARY KEY (rule, version_hash, branch)
)
"""

_ORDER_COLUMNS = ("order_id, rule, version_hash, as_of, customer_id, event_key, decision, "
                  "actions, created_at, branch, pending")
_OUTBOX_COLUMNS = ("message_id, order_id, rule, channel, customer_id, text, send_at, send_day, "
                   "state, attempts, sent_at, claimed_by, lease_until, last_error")

_BULK_SQLITE = (
    _PLANS,
    # rule_orders: no index on order_id (derived from the unique key, which is the one
    # lookups use), actions nullable, the unique key in the order a day's rows arrive.
    _ORDERS.replace("rule_orders", "rule_orders_new")
    .replace("order_id VARCHAR(64) NOT NULL PRIMARY KEY", "order_id VARCHAR(64) NOT NULL")
    .replace("actions TEXT NOT NULL", "actions TEXT")
    .replace("UNIQUE (rule, customer_id, event_key)", "UNIQUE (rule, event_key, customer_id)"),
    f"INSERT INTO rule_orders_new ({_ORDER_COLUMNS}) SELECT {_ORDER_COLUMNS} FROM rule_orders "
    "ORDER BY rule, event_key, customer_id",
    "DROP TABLE rule_orders",
    "ALTER TABLE rule_orders_new RENAME TO rule_orders",
    "CREATE INDEX rule_orders_day ON rule_orders (rule, as_of)",
    # touch_outbox: an integer key the dispatcher claims by (appended in write order),
    # message_id kept (unique by construction: order id and action number).
    _OUTBOX.replace("touch_outbox", "touch_outbox_new")
    .replace("message_id VARCHAR(80) NOT NULL PRIMARY KEY",
             "id INTEGER PRIMARY KEY,\n    message_id VARCHAR(80) NOT NULL"),
    f"INSERT INTO touch_outbox_new ({_OUTBOX_COLUMNS}) SELECT {_OUTBOX_COLUMNS} "
    "FROM touch_outbox ORDER BY message_id",
    "DROP TABLE touch_outbox",
    "ALTER TABLE touch_outbox_new RENAME TO touch_outbox",
    "CREATE INDEX touch_outbox_due ON touch_outbox (state, send_at)",
    "CREATE INDEX touch_outbox_day ON touch_outbox (send_day)",
)

_BULK_POSTGRESQL = (
    _PLANS,
    "ALTER TABLE rule_orders ALTER COLUMN actions DROP NOT NULL",
    "ALTER TABLE touch_outbox ADD COLUMN id BIGSERIAL",
    "CREATE UNIQUE INDEX touch_outbox_id ON touch_outbox (id)",
    "DROP INDEX touch_outbox_customer",
    "CREATE INDEX touch_outbox_day ON touch_outbox (send_day)",
)

_ORDER_COLUMNS_V3 = ("rule, version_hash, as_of, customer_id, event_key, decision, actions, "
                     "created_at, branch, pending")
_OUTBOX_COLUMNS_V3 = ("rule, channel, customer_id, text, send_at, send_day, state, attempts, "
                      "sent_at, claimed_by, lease_until, last_error")

_INTEGER_IDS_SQLITE = (
    # the new order ids: unique-key order, the order a day's rows are written in
    "CREATE TEMP TABLE kequn_order_ids AS SELECT order_id AS old_id, row_number() OVER "
    "(ORDER BY rule, event_key, customer_id) AS new_id FROM rule_orders",
    "CREATE UNIQUE INDEX temp.kequn_order_ids_old ON kequn_order_ids (old_id)",
    _ORDERS.replace("rule_orders", "rule_orders_new")
    .replace(_DECISION_IN, one_of("decision", DECISIONS))
    .replace("order_id VARCHAR(64) NOT NULL PRIMARY KEY", "order_id INTEGER PRIMARY KEY")
    .replace("actions TEXT NOT NULL", "actions TEXT")
    .replace("UNIQUE (rule, customer_id, event_key)", "UNIQUE (rule, event_key, customer_id)"),
    f"INSERT INTO rule_orders_new (order_id, {_ORDER_COLUMNS_V3}) SELECT i.new_id, "
    + ", ".join(f"o.{c.strip()}" for c in _ORDER_COLUMNS_V3.split(","))
    + " FROM rule_orders o JOIN kequn_order_ids i ON i.old_id = o.order_id ORDER BY i.new_id",
    # attempts before the outbox: they find their message by its old text id
    """CREATE TABLE touch_attempts_new (
    message_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at TIMESTAMP NOT NULL,
    worker VARCHAR(80) NOT NULL,
    ok SMALLINT NOT NULL,
    detail TEXT,
    PRIMARY KEY (message_id, attempt)
)""",
    "INSERT INTO touch_attempts_new (message_id, attempt, at, worker, ok, detail) "
    "SELECT m.id, a.attempt, a.at, a.worker, a.ok, a.detail FROM touch_attempts a "
    "LEFT JOIN touch_outbox m ON m.message_id = a.message_id ORDER BY m.id, a.attempt",
    _OUTBOX.replace("touch_outbox", "touch_outbox_new")
    .replace(_STATE_IN, one_of("state", STATES))
    .replace("message_id VARCHAR(80) NOT NULL PRIMARY KEY,\n    order_id VARCHAR(64) NOT NULL",
             "message_id INTEGER PRIMARY KEY,\n    order_id INTEGER NOT NULL,\n"
             "    action_no SMALLINT NOT NULL"),
    f"INSERT INTO touch_outbox_new (message_id, order_id, action_no, {_OUTBOX_COLUMNS_V3}) "
    "SELECT m.id, i.new_id, CAST(substr(m.message_id, length(m.order_id) + 2) AS INTEGER), "
    + ", ".join(f"m.{c.strip()}" for c in _OUTBOX_COLUMNS_V3.split(","))
    + " FROM touch_outbox m LEFT JOIN kequn_order_ids i ON i.old_id = m.order_id ORDER BY m.id",
    "DROP TABLE kequn_order_ids",
    "DROP TABLE rule_orders",
    "ALTER TABLE rule_orders_new RENAME TO rule_orders",
    "CREATE INDEX rule_orders_day ON rule_orders (rule, as_of)",
    "DROP TABLE touch_attempts",
    "ALTER TABLE touch_attempts_new RENAME TO touch_attempts",
    "DROP TABLE touch_outbox",
    "ALTER TABLE touch_outbox_new RENAME TO touch_outbox",
    "CREATE INDEX touch_outbox_due ON touch_outbox (state, send_at)",
    "CREATE INDEX touch_outbox_day ON touch_outbox (send_day)",
)

_INTEGER_IDS_POSTGRESQL = (
    "ALTER TABLE rule_orders ADD COLUMN new_id BIGINT",
    "UPDATE rule_orders o SET new_id = i.new_id FROM (SELECT order_id, row_number() OVER "
    "(ORDER BY rule, event_key, customer_id) AS new_id FROM rule_orders) i "
    "WHERE i.order_id = o.order_id",
    "ALTER TABLE touch_outbox ADD COLUMN new_order_id BIGINT, ADD COLUMN action_no SMALLINT",
    "UPDATE touch_outbox m SET new_order_id = o.new_id, "
    "action_no = CAST(substr(m.message_id, length(m.order_id) + 2) AS SMALLINT) "
    "FROM rule_orders o WHERE o.order_id = m.order_id",
    "ALTER TABLE touch_attempts ADD COLUMN new_message_id BIGINT",
    "UPDATE touch_attempts a SET new_message_id = m.id FROM touch_outbox m "
    "WHERE m.message_id = a.message_id",
    "ALTER TABLE touch_attempts DROP CONSTRAINT touch_attempts_pkey",
    "ALTER TABLE touch_attempts DROP COLUMN message_id",
    "ALTER TABLE touch_attempts RENAME COLUMN new_message_id TO message_id",
    "ALTER TABLE touch_attempts ALTER COLUMN message_id SET NOT NULL",
    "ALTER TABLE touch_attempts ADD PRIMARY KEY (message_id, attempt)",
    "ALTER TABLE touch_outbox DROP COLUMN message_id",
    "ALTER TABLE touch_outbox DROP COLUMN order_id",
    "ALTER TABLE touch_outbox RENAME COLUMN new_order_id TO order_id",
    "ALTER TABLE touch_outbox ALTER COLUMN order_id SET NOT NULL",
    "ALTER TABLE touch_outbox ALTER COLUMN action_no SET NOT NULL",
    "DROP INDEX touch_outbox_id",
    "ALTER TABLE touch_outbox ALTER COLUMN id DROP DEFAULT",
    "DROP SEQUENCE IF EXISTS touch_outbox_id_seq",
    "ALTER TABLE touch_outbox RENAME COLUMN id TO message_id",
    "ALTER TABLE touch_outbox ADD PRIMARY KEY (message_id)",
    "ALTER TABLE rule_orders DROP CONSTRAINT rule_orders_pkey",
    "ALTER TABLE rule_orders DROP COLUMN order_id",
    "ALTER TABLE rule_orders RENAME COLUMN new_id TO order_id",
    "ALTER TABLE rule_orders ALTER COLUMN order_id SET NOT NULL",
    "ALTER TABLE rule_orders ADD PRIMARY KEY (order_id)",
)

RULES_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "rule versions, rule orders, touch outbox, opt-outs and attempts",
              (_VERSIONS, _ORDERS, _OUTBOX, _OPT_OUT, _ATTEMPTS, *_INDEXES)),
    Migration(2, "bulk-friendly orders and outbox: plans once per version and branch",
              {"sqlite": _BULK_SQLITE, "postgresql": _BULK_POSTGRESQL}),
    Migration(3, "integer order and message ids, numbered in write order",
              {"sqlite": _INTEGER_IDS_SQLITE, "postgresql": _INTEGER_IDS_POSTGRESQL}),
)


def migrate(db: ServingDB) -> list[int]:
    """Bring the ``rules`` stream up to date on ``db``; the versions applied now."""
    return apply_migrations(db, STREAM, RULES_MIGRATIONS)
