"""Sync one segment's members for a day into ``coupon_eligibility`` (architecture §6).

:func:`sync_segment` runs the steps of the other ``sync`` modules in order. What the
sync promises, and how:

* **Only the difference moves.** The warehouse keeps what the last sync wrote
  (``sync.applied(segment, customer_id)`` and ``sync.marker(segment, sync_id, as_of,
  ...)``, :mod:`sync.tracking`). The diff against ``segments.members`` for the day is
  computed inside DuckDB (anti-joins into temporary tables, :mod:`sync.diff`) and only
  the added and removed ids travel to the serving database, in chunks of
  :data:`sync.diff.CHUNK` ids per statement (:mod:`sync.apply`).
* **One serving transaction.** Removes, adds, the ``sync_state`` row (which sync produced
  the current rows) and the final ``sync_log`` status commit together.
* **Crash-safe across the two databases.** The serving commit comes first; then the
  warehouse tracking is updated in one DuckDB transaction. A sync killed before the
  serving commit changed nothing in ``coupon_eligibility``; one killed after it left the
  warehouse marker behind ``sync_state``. Every run compares the two ids first: when they
  differ (or either is missing) it re-reads the segment's rows from
  ``coupon_eligibility`` into DuckDB and diffs against that, so the next run converges
  (:func:`sync.plan.choose_base`). Once planned, a sync writes its ``sync_log`` row as
  ``failed`` ("did not finish") and turns it into its final status inside the apply
  transaction (:mod:`sync.log`), so a sync killed while it applies is visible in the log.
  Planning writes nothing anywhere and reads the serving database without its write
  lock, so a sync plans while another writer (a campaign's batch) holds that lock; an
  error while planning is logged as ``failed`` with its message, and a sync killed
  while planning leaves no row (and nothing else) behind.
* **Idempotent.** Re-running the same day finds no difference: ``noop``.
* **Ordered.** A day older than the one ``sync_state`` holds is skipped (``noop`` with
  the reason) unless ``force``; a backfill therefore never rolls the table back.
* **Guarded.** A change beyond the segment's guardrails (:mod:`sync.guardrails`) is
  ``blocked``: nothing applied, the reasons in ``sync_log.reason``; ``force`` overrides.
  The decision itself is pure (:func:`sync.plan.plan_sync`).
* **Serialised per segment** by :func:`sync.lock.segment_lock`, and the apply
  transaction re-checks that ``sync_state`` still holds the sync it diffed against.

``dry_run`` computes the same plan and verdict and writes nothing anywhere (it works on
a read-only warehouse connection).

Fault injection: pass ``checkpoint``, a callable that :func:`sync_segment` calls with
each name of :data:`CHECKPOINTS` as it passes that point. A test can raise there (an
error the process survives), block (to be killed, or to hold the lock), or change
something under the sync.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, nullcontext, suppress
from datetime import date, datetime

import duckdb

from kequn.errors import ExecutionError, Location
from project.sync import SyncSettings
from serving.db import ServingDB, connection_errors, integrity_errors, utcnow
from sync.apply import (
    add_members,
    move_synced_day,
    record_sync,
    remove_members,
    serving_state,
)
from sync.diff import (
    TempTables,
    built,
    compute_diff,
    id_chunks,
    members_table_exists,
    read_back,
    serving_fingerprint,
    snapshot_definition_hash,
    tracking_fingerprint,
)
from sync.lock import DEFAULT_TIMEOUT, segment_lock
from sync.log import log_failure, log_finished, log_started
from sync.plan import Base, SyncResult, choose_base, next_state, plan_sync, tracking_update
from sync.tracking import read_marker, tracking_exists, update_marker, update_tracking

__all__ = ["CHECKPOINTS", "Checkpoint", "SyncResult", "sync_segment"]

LOG = logging.getLogger("kequn.sync")

CHECKPOINTS = (
    "diffed",  # plan computed, nothing written anywhere yet (no sync_log row either)
    "logged",  # the 'started' sync_log row committed, the apply transaction not begun
    "mid_apply",  # inside the serving transaction: removes done, adds not yet
    "before_serving_commit",  # every serving statement run, COMMIT not yet
    "after_serving_commit",  # serving committed, warehouse tracking not yet updated
    "after_warehouse_update",  # both updated, before returning
)
"""The points a sync passes, in order, where ``checkpoint`` is called (not in a dry run;
``mid_apply`` only when rows change)."""

Checkpoint = Callable[[str], None]
"""Called with a name from :data:`CHECKPOINTS` when the sync reaches that point."""


def _pass(name: str) -> None:
    """The default checkpoint: do nothing."""


def _check_warehouse(
    con: duckdb.DuckDBPyConnection, segment: str, as_of: date, *, writing: bool
) -> None:
    if not members_table_exists(con):
        raise ExecutionError(
            "the warehouse has no segments.members table yet; build the segments first "
            "(kequn materialize)",
            Location(),
        )
    if built(con, segment, as_of) is False:
        raise ExecutionError(
            f"segment '{segment}' has not been built for {as_of} (no row in "
            "segments.materializations); nothing to sync",
            Location(),
            hint=f"kequn materialize --as-of {as_of} --select 'key:segments/{segment}'",
        )
    if writing and not tracking_exists(con):
        raise ExecutionError(
            "the warehouse has no sync.applied / sync.marker tables; open it read-write "
            "with warehouse.db.connect, which brings its schema up to date",
            Location(),
        )


def sync_segment(
    con: duckdb.DuckDBPyConnection,
    db: ServingDB,
    segment: str,
    as_of: date,
    settings: SyncSettings | None = None,
    *,
    force: bool = False,
    dry_run: bool = False,
    definition_hash: str | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    checkpoint: Checkpoint | None = None,
) -> SyncResult:
    """Sync ``segment``'s members on ``as_of`` into ``coupon_eligibility``.

    ``con`` is the warehouse (read-write, or read-only for a dry run); ``db`` the serving
    database. Returns the result; a ``blocked`` sync is recorded in ``sync_log`` and
    returned (callers decide how loudly to fail). Any unexpected error is recorded as
    ``failed`` and re-raised. Waits up to ``lock_timeout`` seconds for another sync of the
    segment (then an ExecutionError). ``checkpoint`` is called at each of
    :data:`CHECKPOINTS`. See the module docstring for the guarantees.
    """
    settings = settings or SyncSettings()
    _check_warehouse(con, segment, as_of, writing=not dry_run)
    # the definition that built this snapshot, not the file as it is now
    definition_hash = snapshot_definition_hash(con, segment, as_of) or definition_hash
    started = utcnow()
    clock = time.perf_counter()
    sync_id = uuid.uuid4().hex
    try:
        return _sync_under_lock(con, db, segment, as_of, settings, sync_id=sync_id,
                                started=started, clock=clock, force=force, dry_run=dry_run,
                                definition_hash=definition_hash, lock_timeout=lock_timeout,
                                checkpoint=checkpoint)
    except connection_errors() as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExecutionError(
            f"the serving database went away during the sync of '{segment}' for {as_of} "
            f"({detail}); coupon_eligibility holds the last committed sync and the next "
            "run recovers", Location()) from None


def _sync_under_lock(
    con: duckdb.DuckDBPyConnection, db: ServingDB, segment: str, as_of: date,
    settings: SyncSettings, *, sync_id: str, started: datetime, clock: float, force: bool,
    dry_run: bool, definition_hash: str | None, lock_timeout: float,
    checkpoint: Checkpoint | None,
) -> SyncResult:
    locked = nullcontext() if dry_run else segment_lock(db, segment, lock_timeout)
    with locked:
        temp = TempTables()
        try:
            return _sync_locked(
                con, db, segment, as_of, settings, temp, sync_id=sync_id, started=started,
                clock=clock, force=force, dry_run=dry_run, definition_hash=definition_hash,
                reach=checkpoint or _pass,
            )
        except BaseException as exc:
            if not dry_run and isinstance(exc, Exception):
                # if the database is gone, the log row stays 'failed: did not finish'
                with suppress(Exception):
                    log_failure(db, sync_id, exc, segment=segment, as_of=as_of,
                                started=started, definition_hash=definition_hash)
            raise
        finally:
            temp.drop(con)


def _sync_locked(
    con: duckdb.DuckDBPyConnection, db: ServingDB, segment: str, as_of: date,
    settings: SyncSettings, temp: TempTables, *, sync_id: str, started: datetime,
    clock: float, force: bool, dry_run: bool, definition_hash: str | None,
    reach: Checkpoint,
) -> SyncResult:
    phases: dict[str, float] = {}
    tick = time.perf_counter()
    state = serving_state(db, segment)
    base = choose_base(state, read_marker(con, segment), force=force)
    drift = ""
    if not base.read_back:
        # the serving table's fingerprint is read on another thread while the warehouse
        # diffs the day against the tracking; a drift (rare) plans again from the table
        with ThreadPoolExecutor(1, thread_name_prefix="kequn-sync-fingerprint") as pool:
            serving = pool.submit(serving_fingerprint, db, segment)
            wrote = tracking_fingerprint(con, segment)
            diff = compute_diff(con, segment, as_of, temp, from_readback=False)
            found = serving.result()
        if found != wrote:
            drift = (f"drift repaired: coupon_eligibility held {found[0]:,} rows of "
                     f"'{segment}' where the last sync wrote {wrote[0]:,}"
                     + (" (same count, other ids)" if found[0] == wrote[0] else ""))
            LOG.warning("%s; planning against the table itself", drift)
            base = Base(read_back=True, recovered=True)
            temp.drop(con)
    if base.read_back:
        read_back(db, con, segment, temp)
        diff = compute_diff(con, segment, as_of, temp, from_readback=True)
    phases["plan_s"] = time.perf_counter() - tick
    previous_as_of = state.as_of if state else None
    plan = plan_sync(
        current=diff.base, target=diff.target, added=diff.added, removed=diff.removed,
        previous_as_of=previous_as_of, as_of=as_of, settings=settings, force=force,
        dry_run=dry_run,
    )

    # a skipped (older) day moves nothing: its counts say so, the reason says what it
    # would have moved
    skipped = plan.skipped_older
    added, removed = (0, 0) if skipped else (diff.added, diff.removed)
    reason = plan.reason + (f" (it would add {diff.added:,} and remove {diff.removed:,})"
                            if skipped and diff.added + diff.removed else "")
    reason = "; ".join(r for r in (drift, reason) if r)

    def result(finished: datetime) -> SyncResult:
        return SyncResult(
            sync_id=sync_id, segment=segment, as_of=as_of, status=plan.status,
            added=added, removed=removed, unchanged=diff.unchanged,
            target_size=diff.target, previous_size=diff.base, previous_as_of=previous_as_of,
            verdict=plan.verdict, reason=reason, started_at=started, finished_at=finished,
            duration_s=time.perf_counter() - clock, dry_run=dry_run, forced=force,
            skipped_older=skipped, recovered=base.recovered,
            sample_added=() if skipped else diff.sample_added,
            sample_removed=() if skipped else diff.sample_removed,
            phases={k: round(v, 4) for k, v in phases.items()},
        )

    if dry_run:
        return result(utcnow())
    reach("diffed")
    log_started(db, sync_id, segment, as_of, started, definition_hash)
    reach("logged")

    new_state = next_state(plan, state, sync_id=sync_id, as_of=as_of, members=diff.target)
    finished = utcnow()
    tick = time.perf_counter()
    with db.bulk_cache(), db.transaction():
        current = serving_state(db, segment, for_update=True)
        if (current.sync_id if current else None) != (state.sync_id if state else None):
            raise ExecutionError(
                f"sync_state of segment '{segment}' changed while this sync was planning "
                "(another writer); run the sync again",
                Location(),
            )
        if plan.write == "delta":
            try:
                with closing(id_chunks(con, temp.removes)) as removes:
                    remove_members(db, segment, removes)
                reach("mid_apply")
                with closing(id_chunks(con, temp.adds)) as adds:
                    add_members(db, segment, as_of, finished, adds)
            except integrity_errors() as exc:
                raise ExecutionError(
                    f"coupon_eligibility rows of segment '{segment}' were changed "
                    f"outside the sync ({exc}); nothing was applied",
                    Location(),
                    hint=f"kequn sync {segment} --as-of {as_of} --force re-plans "
                    "against the table as it is",
                ) from exc
        if plan.write in ("delta", "state"):
            record_sync(db, segment, sync_id, as_of, diff.target, definition_hash, finished)
        elif plan.write == "day":
            move_synced_day(db, segment, as_of, definition_hash, finished)
        log_finished(db, sync_id, plan.status, reason, added=added,
                     removed=removed, unchanged=diff.unchanged, finished=finished)
        reach("before_serving_commit")
    phases["serving_s"] = time.perf_counter() - tick
    reach("after_serving_commit")
    tick = time.perf_counter()

    update = tracking_update(plan, read_back=base.read_back, previous=state, new=new_state)
    if update.rebuild or update.apply_delta:
        update_tracking(con, segment, temp, diff, rebuild=update.rebuild,
                        apply_delta=update.apply_delta, state=new_state,
                        definition_hash=definition_hash)
    elif update.marker:  # a noop that moved the synced day: the marker only
        update_marker(con, segment, new_state, definition_hash)
    phases["warehouse_s"] = time.perf_counter() - tick
    reach("after_warehouse_update")
    return result(finished)
