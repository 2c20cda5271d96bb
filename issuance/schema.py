"""The ``issuance`` migration stream: coupons, their history, counters and requests.

Tables (timestamps are naive UTC, days are Asia/Shanghai business days):

* ``coupons``: one row per issued coupon, its current ``status`` and the campaign
  terms it was issued under (template, validity, stacking, failed-drawdown policy,
  channels, lease length), so a coupon keeps working if its campaign file changes.
* ``coupon_history``: append-only, one row per transition, ``seq`` = the coupon's version
  after it (the issue itself is the coupon row's creation, version 1, with its
  ``issued_at``: not a transition, and one page less per issue); triggers refuse UPDATE
  and DELETE.
* ``issuance_counters(campaign, bucket, issued)``: per campaign, the lifetime count
  (``bucket = 'total'``, also the campaign's lock row: every issue locks it first, which
  serialises a campaign's issues on PostgreSQL; on SQLite ``BEGIN IMMEDIATE`` already
  serialises writers) and one row per Asia/Shanghai day (``bucket = 'YYYY-MM-DD'``),
  written in the same transaction as the coupon. The per-customer count is read from
  ``coupons`` (index ``coupons_customer``) under the same locks. One small table keeps
  an issue's write set to few pages, which is what bounds SQLite's commit rate.
* ``issuance_requests``: one row per idempotency key with the first result.
* ``coupon_loan_closed(coupon_id, loan_id)``: a loan whose try on a coupon is over
  (reversed, or its lease expired); a later occupy by that loan is refused (TCC: an
  empty rollback is recorded, the dangling try is refused).
"""

from __future__ import annotations

from issuance.states import STATES
from kequn.migrations import Migration, apply_migrations, one_of
from serving.db import ServingDB

STREAM = "issuance"

_STATUS_CHECK = ", ".join(f"'{s}'" for s in STATES)

_COUPONS = f"""
CREATE TABLE coupons (
    coupon_id VARCHAR(40) NOT NULL PRIMARY KEY,
    campaign VARCHAR(200) NOT NULL,
    customer_id BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL CHECK (status IN ({_STATUS_CHECK})),
    template_kind VARCHAR(32) NOT NULL,
    template_value VARCHAR(32) NOT NULL,
    exclusive SMALLINT NOT NULL,
    on_failed_drawdown VARCHAR(16) NOT NULL,
    channels VARCHAR(64) NOT NULL,
    lease_seconds INTEGER NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    issue_day DATE NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_until TIMESTAMP NOT NULL,
    loan_id VARCHAR(64),
    lease_until TIMESTAMP,
    version INTEGER NOT NULL,
    updated_at TIMESTAMP NOT NULL
)
"""

_HISTORY = f"""
CREATE TABLE coupon_history (
    coupon_id VARCHAR(40) NOT NULL,
    seq INTEGER NOT NULL,
    from_status VARCHAR(16) CHECK (from_status IN ({_STATUS_CHECK})),
    to_status VARCHAR(16) NOT NULL CHECK (to_status IN ({_STATUS_CHECK})),
    at TIMESTAMP NOT NULL,
    loan_id VARCHAR(64),
    reason VARCHAR(64) NOT NULL,
    request_key VARCHAR(200),
    PRIMARY KEY (coupon_id, seq)
)
"""

_REQUESTS = """
CREATE TABLE issuance_requests (
    idempotency_key VARCHAR(200) NOT NULL PRIMARY KEY,
    operation VARCHAR(16) NOT NULL,
    fingerprint VARCHAR(600) NOT NULL,
    ok SMALLINT NOT NULL,
    reason VARCHAR(64),
    coupon_id VARCHAR(40),
    status VARCHAR(16),
    created_at TIMESTAMP NOT NULL
)
"""

_COUNTERS = """
CREATE TABLE issuance_counters (
    campaign VARCHAR(200) NOT NULL,
    bucket VARCHAR(10) NOT NULL,
    issued BIGINT NOT NULL,
    PRIMARY KEY (campaign, bucket)
)
"""

_CLOSED = """
CREATE TABLE coupon_loan_closed (
    coupon_id VARCHAR(40) NOT NULL,
    loan_id VARCHAR(64) NOT NULL,
    reason VARCHAR(64) NOT NULL,
    closed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (coupon_id, loan_id)
)
"""

_INDEXES = (
    "CREATE INDEX coupons_customer ON coupons (customer_id, campaign, status)",
    "CREATE INDEX coupons_loan ON coupons (loan_id) WHERE loan_id IS NOT NULL",
    "CREATE INDEX coupons_lease ON coupons (lease_until) WHERE status = 'occupied'",
)
# PostgreSQL only: on SQLite every index an issue writes is one more WAL page per commit
# (the commit rate is bounded by those pages), so the expiry job scans there instead,
# outside the write transaction.
_PG_VALIDITY_INDEX = (
    "CREATE INDEX coupons_unused_validity ON coupons (valid_until) WHERE status = 'unused'"
)


def _without_rowid(ddl: str) -> str:
    return ddl.rstrip() + " WITHOUT ROWID"


# SQLite's append-only guard on the history (PostgreSQL: a trigger function).
_HISTORY_TRIGGERS = (
    "CREATE TRIGGER coupon_history_no_update BEFORE UPDATE ON coupon_history "
    "BEGIN SELECT RAISE(ABORT, 'coupon_history is append-only'); END",
    "CREATE TRIGGER coupon_history_no_delete BEFORE DELETE ON coupon_history "
    "BEGIN SELECT RAISE(ABORT, 'coupon_history is append-only'); END",
)

_SQLITE = (
    _without_rowid(_COUPONS),
    _without_rowid(_HISTORY),
    _without_rowid(_REQUESTS),
    _without_rowid(_COUNTERS),
    _without_rowid(_CLOSED),
    *_INDEXES,
    *_HISTORY_TRIGGERS,
)

_POSTGRESQL = (
    _COUPONS,
    _HISTORY,
    _REQUESTS,
    _COUNTERS,
    _CLOSED,
    *_INDEXES,
    _PG_VALIDITY_INDEX,
    "CREATE FUNCTION coupon_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'coupon_history is append-only'; END $$",
    "CREATE TRIGGER coupon_history_append_only BEFORE UPDATE OR DELETE ON coupon_history "
    "FOR EACH ROW EXECUTE FUNCTION coupon_history_append_only()",
)

# The pieces of ``kequn_issue`` that its versions share (version 2 reads as it always did).
_ISSUE_HEAD = """
CREATE FUNCTION kequn_issue(
  p_key_ns integer, p_key_lock integer, p_key text, p_coupon_id text, p_fingerprint text,
  p_campaign text, p_customer bigint, p_customer_ns integer, p_customer_lock integer,
  p_segment text, p_bucket text, p_now timestamp, p_in_window boolean,
  p_total_stock bigint, p_daily_limit bigint, p_per_customer bigint, p_exclusive smallint,
  p_kind text, p_value text, p_on_failed text, p_channels text, p_lease integer,
  p_issue_day date, p_valid_from timestamp, p_valid_until timestamp)
RETURNS TABLE (o_operation text, o_fingerprint text, o_ok smallint, o_reason text,
               o_coupon_id text, o_status text, o_campaign text, o_customer_id bigint,
               o_refusal text)
LANGUAGE plpgsql AS $$
DECLARE
  v_stock bigint;
  v_today bigint;
  v_mine bigint;
  v_reason text;
BEGIN
"""
_ISSUE_REPLAY = """  PERFORM pg_advisory_xact_lock(p_key_ns, p_key_lock);
  RETURN QUERY
    SELECT r.operation::text, r.fingerprint::text, r.ok, r.reason::text, r.coupon_id::text,
           r.status::text, c.campaign::text, c.customer_id, NULL::text
    FROM (SELECT 1 AS one) AS probe
    LEFT JOIN issuance_requests AS r ON r.idempotency_key = p_key
    LEFT JOIN coupons AS c ON c.coupon_id = p_coupon_id
    WHERE r.idempotency_key IS NOT NULL OR c.coupon_id IS NOT NULL;
  IF FOUND THEN
    RETURN;
  END IF;
"""
_ISSUE_CHECKS = """  IF NOT p_in_window THEN
    v_reason := 'outside_window';
  ELSIF NOT EXISTS (SELECT 1 FROM coupon_eligibility
                    WHERE segment = p_segment AND customer_id = p_customer) THEN
    v_reason := 'not_eligible';
  ELSIF v_stock >= p_total_stock THEN
    v_reason := 'stock_exhausted';
  ELSE
    SELECT issued INTO v_today FROM issuance_counters
      WHERE campaign = p_campaign AND bucket = p_bucket;
    IF coalesce(v_today, 0) >= p_daily_limit THEN
      v_reason := 'daily_limit';
    ELSE
      SELECT count(*) INTO v_mine FROM coupons
        WHERE customer_id = p_customer AND campaign = p_campaign;
      IF v_mine >= p_per_customer THEN
        v_reason := 'per_customer_limit';
      ELSIF EXISTS (
          SELECT 1 FROM coupons
          WHERE customer_id = p_customer AND campaign <> p_campaign
            AND ((status = 'occupied' AND (lease_until > p_now OR valid_until > p_now))
                 OR (status = 'unused' AND valid_until > p_now))
            AND (exclusive = 1 OR p_exclusive = 1)) THEN
        v_reason := 'exclusive_conflict';
      END IF;
    END IF;
  END IF;
"""
_ISSUE_REFUSAL = """\
    INSERT INTO issuance_requests (idempotency_key, operation, fingerprint, ok, reason,
      coupon_id, status, created_at)
    VALUES (p_key, 'issue', p_fingerprint, 0, v_reason, NULL, NULL, p_now);
"""
_ISSUE_COUPON = """    INSERT INTO coupons (coupon_id, campaign, customer_id, status, template_kind,
      template_value, exclusive, on_failed_drawdown, channels, lease_seconds, issued_at,
      issue_day, valid_from, valid_until, loan_id, lease_until, version, updated_at)
    VALUES (p_coupon_id, p_campaign, p_customer, 'unused', p_kind, p_value, p_exclusive,
      p_on_failed, p_channels, p_lease, p_now, p_issue_day, p_valid_from, p_valid_until,
      NULL, NULL, 1, p_now);
"""
_ISSUE_END = """\
  RETURN QUERY SELECT NULL::text, NULL::text, NULL::smallint, NULL::text, NULL::text,
                      NULL::text, NULL::text, NULL::bigint, v_reason;
END
$$
"""

# PostgreSQL: one issue request in one statement (one round trip, no BEGIN/COMMIT), so a
# campaign's lock row is held for the server-side work only. The same steps and the same
# decision order as issuance.service.Issuer.issue_in_transaction and
# issuance.limits.refusal_for_counts (the tests run both back ends against one model):
# key lock, replay, campaign row, customer lock, facts, then a refusal under the key or
# the coupon and its counters. Output: the key's first result (o_operation ..
# o_customer_id, as issuance.store.REPLAY_SELECT) when the key was used before, else
# the refusal reason (NULL when issued).
_PG_ISSUE = (_ISSUE_HEAD + _ISSUE_REPLAY + """  SELECT issued INTO v_stock FROM issuance_counters
    WHERE campaign = p_campaign AND bucket = 'total' FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO issuance_counters (campaign, bucket, issued) VALUES (p_campaign, 'total', 0)
      ON CONFLICT (campaign, bucket) DO NOTHING;
    SELECT issued INTO v_stock FROM issuance_counters
      WHERE campaign = p_campaign AND bucket = 'total' FOR UPDATE;
  END IF;
  PERFORM pg_advisory_xact_lock(p_customer_ns, p_customer_lock);
"""
             + _ISSUE_CHECKS + "  IF v_reason IS NOT NULL THEN\n" + _ISSUE_REFUSAL
             + "  ELSE\n" + _ISSUE_COUPON + """    UPDATE issuance_counters SET issued = issued + 1
      WHERE campaign = p_campaign AND bucket = 'total';
    INSERT INTO issuance_counters (campaign, bucket, issued) VALUES (p_campaign, p_bucket, 1)
      ON CONFLICT (campaign, bucket) DO UPDATE SET issued = issuance_counters.issued + 1;
  END IF;
"""
             + _ISSUE_END)


# Version 3: only a live campaign issues, with the definition that was approved (see
# issuance.approval.live_refusal): after the key's replay, the campaign's state row is
# share-locked (so a concurrent submit/launch/end waits for this issue) and a campaign
# that is not live is refused 'not_live' without recording it under the key.
_PG_DROP_ISSUE = (
    "DROP FUNCTION kequn_issue(integer, integer, text, text, text, text, bigint, integer, "
    "integer, text, text, timestamp, boolean, bigint, bigint, bigint, smallint, text, text, "
    "text, text, integer, date, timestamp, timestamp)"
)
_PG_ISSUE_LIVE = _PG_ISSUE.replace(
    "p_issue_day date, p_valid_from timestamp, p_valid_until timestamp)",
    "p_issue_day date, p_valid_from timestamp, p_valid_until timestamp,\n"
    "  p_definition_hash text)",
).replace(
    "  IF FOUND THEN\n    RETURN;\n  END IF;\n",
    "  IF FOUND THEN\n    RETURN;\n  END IF;\n"
    "  PERFORM 1 FROM campaign_states WHERE campaign = p_campaign AND state = 'live'\n"
    "    AND definition_hash = p_definition_hash FOR SHARE;\n"
    "  IF NOT FOUND THEN\n"
    "    RETURN QUERY SELECT NULL::text, NULL::text, NULL::smallint, NULL::text, NULL::text,\n"
    "                        NULL::text, NULL::text, NULL::bigint, 'not_live'::text;\n"
    "    RETURN;\n  END IF;\n",
    1,
)

# Version 4: the campaign's counter rows are locked last and briefly. The old order (the
# total row FOR UPDATE first, the state row FOR SHARE) held a campaign's hot row through
# every check of the request and wrote a row lock (a MultiXact with many issuers) on the
# state row per issue. Now: the key lock, the replay, the campaign's advisory lock taken
# shared (issuance.approval.lock_campaign_shared; a state change takes it exclusive) and
# the state read, the customer's lock, the checks against the counters as committed, the
# coupon row, and last the counters, each raised only while under its limit (an upsert
# whose update has a WHERE: PostgreSQL re-checks it on the latest row version after
# waiting for the row), so stock and daily limits stay exact; a counter at its limit
# refuses (stock_exhausted, then daily_limit) and the coupon row is removed again.
_PG_DROP_ISSUE_LIVE = _PG_DROP_ISSUE.replace("timestamp, timestamp)",
                                             "timestamp, timestamp, text)")
_PG_ISSUE_LATE_LOCK = (
    _ISSUE_HEAD.replace("p_valid_until timestamp)",
                        "p_valid_until timestamp,\n  p_definition_hash text, "
                        "p_campaign_ns integer, p_campaign_lock integer)")
    + _ISSUE_REPLAY + """  PERFORM pg_advisory_xact_lock_shared(p_campaign_ns, p_campaign_lock);
  PERFORM 1 FROM campaign_states WHERE campaign = p_campaign AND state = 'live'
    AND definition_hash = p_definition_hash;
  IF NOT FOUND THEN
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::smallint, NULL::text, NULL::text,
                        NULL::text, NULL::text, NULL::bigint, 'not_live'::text;
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(p_customer_ns, p_customer_lock);
  SELECT issued INTO v_stock FROM issuance_counters
    WHERE campaign = p_campaign AND bucket = 'total';
"""
    + _ISSUE_CHECKS.replace("ELSIF v_stock >= p_total_stock",
                            "ELSIF coalesce(v_stock, 0) >= p_total_stock")
    + """  IF v_reason IS NULL THEN
""" + _ISSUE_COUPON + """    INSERT INTO issuance_counters AS k (campaign, bucket, issued)
      VALUES (p_campaign, 'total', 1)
      ON CONFLICT (campaign, bucket) DO UPDATE SET issued = k.issued + 1
      WHERE k.issued < p_total_stock;
    IF NOT FOUND THEN
      v_reason := 'stock_exhausted';
    ELSE
      INSERT INTO issuance_counters AS k (campaign, bucket, issued)
        VALUES (p_campaign, p_bucket, 1)
        ON CONFLICT (campaign, bucket) DO UPDATE SET issued = k.issued + 1
        WHERE k.issued < p_daily_limit;
      IF NOT FOUND THEN
        v_reason := 'daily_limit';
        UPDATE issuance_counters SET issued = issued - 1
          WHERE campaign = p_campaign AND bucket = 'total';
      END IF;
    END IF;
    IF v_reason IS NOT NULL THEN
      DELETE FROM coupons WHERE coupon_id = p_coupon_id;
    END IF;
  END IF;
  IF v_reason IS NOT NULL THEN
"""
    + _ISSUE_REFUSAL + """  END IF;
""" + _ISSUE_END)

# Version 5: version 4 read the total and the day's counter in two statements, so two
# snapshots: an issue could see the stock not yet exhausted, then (another issue having
# committed the last coupon in between) the day's counter full, and answer daily_limit
# where stock_exhausted comes first. Both counters are now read in one statement.
_PG_ISSUE_ONE_READ = _PG_ISSUE_LATE_LOCK.replace(
    "CREATE FUNCTION kequn_issue(", "CREATE OR REPLACE FUNCTION kequn_issue(", 1,
).replace(
    "  SELECT issued INTO v_stock FROM issuance_counters\n"
    "    WHERE campaign = p_campaign AND bucket = 'total';\n",
    "  SELECT max(issued) FILTER (WHERE bucket = 'total'),\n"
    "         max(issued) FILTER (WHERE bucket = p_bucket)\n"
    "    INTO v_stock, v_today FROM issuance_counters\n"
    "    WHERE campaign = p_campaign AND bucket IN ('total', p_bucket);\n", 1,
).replace(
    "    SELECT issued INTO v_today FROM issuance_counters\n"
    "      WHERE campaign = p_campaign AND bucket = p_bucket;\n", "", 1)

# Version 8: the customer's own limits in one probe of their coupons, by customer only.
# Version 5 asked twice (a count of this campaign's coupons, then EXISTS a live conflicting
# coupon of another campaign) and the second query's ORs of status and validity let the
# planner combine indexes: a backend's cached generic plan (from its sixth call on, planned
# while the table was small) was seen ORing the customer index with the index of every
# unused coupon's validity, so each issue read every unused coupon (3-5 ms an issue as the
# table grew; one benchmark run in five at 8 processes fell to 2,000 issues/s). Now one
# query whose only condition the planner can use is ``customer_id``; the limits' tests
# are aggregates over that customer's coupons. Same decisions, same order.
_OWN_FROM = _ISSUE_CHECKS.index("      SELECT count(*) INTO v_mine")
_ISSUE_OWN_LIMITS_V5 = _ISSUE_CHECKS[
    _OWN_FROM:_ISSUE_CHECKS.index("    END IF;\n  END IF;\n", _OWN_FROM)]
"""The per-customer count and the exclusive-conflict EXISTS, as versions 2-5 ask them."""
_ISSUE_OWN_LIMITS = """      SELECT count(*) FILTER (WHERE campaign = p_campaign),
             coalesce(bool_or(campaign <> p_campaign
               AND ((status = 'occupied' AND (lease_until > p_now OR valid_until > p_now))
                    OR (status = 'unused' AND valid_until > p_now))
               AND (exclusive = 1 OR p_exclusive = 1)), false)
        INTO v_mine, v_conflict FROM coupons WHERE customer_id = p_customer;
      IF v_mine >= p_per_customer THEN
        v_reason := 'per_customer_limit';
      ELSIF v_conflict THEN
        v_reason := 'exclusive_conflict';
      END IF;
"""
_PG_ISSUE_ONE_PROBE = _PG_ISSUE_ONE_READ.replace(
    "  v_reason text;\n", "  v_reason text;\n  v_conflict boolean;\n", 1,
).replace(_ISSUE_OWN_LIMITS_V5, _ISSUE_OWN_LIMITS, 1)  # tests/issuance/test_issue_plans.py

# Version 6, SQLite: the coupon tables rebuilt with their status checks as ORs of
# equalities (kequn.migrations.one_of). SQLite 3.40 evaluates a CHECK's IN list by
# building a small table for every row written: 0.7 us a coupon, a sixth of a batch's
# insert. Same rule, same rows; the history's append-only triggers are re-created.
_COUPON_COLUMNS = ("coupon_id, campaign, customer_id, status, template_kind, template_value, "
                   "exclusive, on_failed_drawdown, channels, lease_seconds, issued_at, "
                   "issue_day, valid_from, valid_until, loan_id, lease_until, version, "
                   "updated_at")
_HISTORY_COLUMNS = "coupon_id, seq, from_status, to_status, at, loan_id, reason, request_key"
_SQLITE_STATUS_ORS = (
    _without_rowid(_COUPONS.replace("coupons", "coupons_new", 1)
                   .replace(f"status IN ({_STATUS_CHECK})", one_of("status", STATES))),
    f"INSERT INTO coupons_new ({_COUPON_COLUMNS}) SELECT {_COUPON_COLUMNS} FROM coupons "
    "ORDER BY coupon_id",
    "DROP TABLE coupons",
    "ALTER TABLE coupons_new RENAME TO coupons",
    *_INDEXES,
    _without_rowid(_HISTORY.replace("coupon_history", "coupon_history_new", 1)
                   .replace(f"from_status IN ({_STATUS_CHECK})",
                            f"from_status IS NULL OR {one_of('from_status', STATES)}")
                   .replace(f"to_status IN ({_STATUS_CHECK})", one_of("to_status", STATES))),
    f"INSERT INTO coupon_history_new ({_HISTORY_COLUMNS}) SELECT {_HISTORY_COLUMNS} "
    "FROM coupon_history ORDER BY coupon_id, seq",
    "DROP TABLE coupon_history",
    "ALTER TABLE coupon_history_new RENAME TO coupon_history",
    *_HISTORY_TRIGGERS,
)

# Version 7, SQLite: the coupons table keeps a rowid; coupon_id stays its primary key, now
# a unique index beside the rows. WITHOUT ROWID stored the rows in coupon-id order, so a
# batch wrote its coupons at random places of one wide B-tree (the ids are hashes); the
# rows are now appended and only the narrow key index is written in random order. Same
# columns, checks, indexes and rows. Measured (benchmarks/bench_issuance.py): a batch of
# 1,000,000 coupons 6.4 s -> 4.7 s, of 200,000 1.10 s -> 0.90 s; single issues unchanged.
_SQLITE_COUPONS_ROWID = (
    _COUPONS.replace("coupons", "coupons_new", 1)
    .replace(f"status IN ({_STATUS_CHECK})", one_of("status", STATES)),
    f"INSERT INTO coupons_new ({_COUPON_COLUMNS}) SELECT {_COUPON_COLUMNS} FROM coupons",
    "DROP TABLE coupons",
    "ALTER TABLE coupons_new RENAME TO coupons",
    *_INDEXES,
)

# Version 9, PostgreSQL: the coupon status is a domain. A table CHECK constraint's
# expression is read from the catalog's text again at every INSERT (PostgreSQL 15:
# ExecConstraints -> stringToNode, 4% of the server's CPU per issue in `perf`); a domain's
# check is prepared once per connection. The same values are allowed and a bad one still
# raises a check violation. Measured: 8 processes, 16,000 issues, interleaved runs, 5,447/s
# against 5,315/s (5 runs each) and 5,253/s against 4,973/s (3 runs each). Existing
# deployments: changing the column's type rewrites the coupons table once, under an
# exclusive lock.
_PG_STATUS_DOMAIN = (
    f"CREATE DOMAIN coupon_status AS VARCHAR(16) CHECK (VALUE IN ({_STATUS_CHECK}))",
    "ALTER TABLE coupons DROP CONSTRAINT coupons_status_check",
    "ALTER TABLE coupons ALTER COLUMN status TYPE coupon_status",
)

# Version 10, PostgreSQL: a refusal for the campaign's room (stock_exhausted,
# daily_limit) is not recorded under the key, as on SQLite and in the batch
# (issuance.limits.NOT_RECORDED): the same request is decided again when sent again.
_ISSUE_RECORDED_REFUSAL = "  IF v_reason IS NOT NULL THEN\n" + _ISSUE_REFUSAL
_PG_ISSUE_ROOM_UNRECORDED = _PG_ISSUE_ONE_PROBE.replace(
    _ISSUE_RECORDED_REFUSAL,
    "  IF v_reason IS NOT NULL\n"
    "      AND v_reason NOT IN ('stock_exhausted', 'daily_limit') THEN\n" + _ISSUE_REFUSAL, 1)

ISSUANCE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "coupons, history, counters, requests and closed tries",
        {"sqlite": _SQLITE, "postgresql": _POSTGRESQL},
    ),
    Migration(
        2,
        "PostgreSQL: an issue request in one statement",
        {"sqlite": (), "postgresql": (_PG_ISSUE,)},
    ),
    Migration(
        3,
        "PostgreSQL: only a live campaign issues (its approved definition)",
        {"sqlite": (), "postgresql": (_PG_DROP_ISSUE, _PG_ISSUE_LIVE)},
    ),
    Migration(
        4,
        "PostgreSQL: an issue locks its campaign's counters last",
        {"sqlite": (), "postgresql": (_PG_DROP_ISSUE_LIVE, _PG_ISSUE_LATE_LOCK)},
    ),
    Migration(
        5,
        "PostgreSQL: an issue reads its campaign's two counters in one snapshot",
        {"sqlite": (), "postgresql": (_PG_ISSUE_ONE_READ,)},
    ),
    Migration(
        6,
        "SQLite: coupon statuses checked by ORs (an IN list costs a table per row)",
        {"sqlite": _SQLITE_STATUS_ORS, "postgresql": ()},
    ),
    Migration(
        7,
        "SQLite: coupons appended in a rowid table (coupon_id a unique key beside them)",
        {"sqlite": _SQLITE_COUPONS_ROWID, "postgresql": ()},
    ),
    Migration(
        8,
        "PostgreSQL: an issue reads the customer's coupons in one probe, by customer only",
        {"sqlite": (), "postgresql": (_PG_ISSUE_ONE_PROBE,)},
    ),
    Migration(
        9,
        "PostgreSQL: the coupon status is a domain (its check prepared once per connection)",
        {"sqlite": (), "postgresql": _PG_STATUS_DOMAIN},
    ),    Migration(
        10,
        "PostgreSQL: a refusal for the campaign's room is not recorded under its key",
        {"sqlite": (), "postgresql": (_PG_ISSUE_ROOM_UNRECORDED,)},
    ),
)


def migrate(db: ServingDB) -> list[int]:
    """Bring the ``issuance`` stream up to date on ``db``; the versions applied now.

    The ``coupon_economics`` and ``audit`` streams (ledger, budget, approval states, audit
    log) are brought up to date too."""
    from issuance.economics_schema import migrate as migrate_economics

    applied = apply_migrations(db, STREAM, ISSUANCE_MIGRATIONS)
    migrate_economics(db)
    return applied
