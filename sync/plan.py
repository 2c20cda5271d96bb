"""The decision of a sync, from numbers alone: what to do and what to write (architecture §6).

Pure: no database here. Given the diff counts (how many members are synced now, the
day's snapshot size, how many would be added and removed), the day that ``sync_state``
holds, the day to sync, the guardrail settings, ``force`` and ``dry_run``,
:func:`plan_sync` decides

* the ``sync_log`` status: ``applied`` (there are changes and they are allowed),
  ``noop`` (nothing to change, or a day older than the synced one, skipped) or
  ``blocked`` (the guardrails refuse; :mod:`sync.guardrails`);
* the reason recorded with it (why skipped, blocked, or forced through);
* what the serving transaction writes (:data:`Write`): the delta and this sync's
  ``sync_state`` row, that row alone, only the synced day, or nothing.

Also pure: which base to diff against (:func:`choose_base`: the warehouse tracking, or
``coupon_eligibility`` read back when the two databases disagree), the ``sync_state``
that results (:func:`next_state`), how the warehouse tracking follows
(:func:`tracking_update`), and the :class:`SyncResult` a sync returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from project.sync import SyncSettings
from sync.guardrails import Verdict, check_guardrails

Write = Literal["delta", "state", "day", "nothing"]
"""What the serving transaction writes besides the final ``sync_log`` status:

* ``delta``: remove and add the changed ``coupon_eligibility`` rows, and record this sync
  in ``sync_state`` (an ``applied`` sync);
* ``state``: no rows change; record this sync in ``sync_state`` (a ``noop`` of a segment
  nothing was synced for yet: its snapshot is empty);
* ``day``: no rows change; only move the synced day in ``sync_state`` forward (a ``noop``);
* ``nothing``: a ``blocked`` sync, a skipped older day, or a dry run.
"""


@dataclass(frozen=True)
class State:
    """Which sync produced a segment's serving rows, for which day, and how many there are.

    Read from ``sync_state`` (serving) or from ``sync.marker`` (warehouse tracking); the
    two agree when the last sync finished.
    """

    sync_id: str | None
    as_of: date | None
    members: int


@dataclass(frozen=True)
class Base:
    """What the diff compares the day's members with.

    ``read_back``: ``coupon_eligibility`` itself, read back into DuckDB (else the
    warehouse's ``sync.applied``). ``recovered``: the tracking disagreed with the serving
    database (not merely a forced re-read, nor a first sync).
    """

    read_back: bool
    recovered: bool


def choose_base(serving: State | None, marker: State | None, *, force: bool) -> Base:
    """Trust the warehouse tracking only when it names the sync that serving says it holds.

    A forced sync always re-reads ``coupon_eligibility``, which also repairs rows changed
    outside the sync.

    >>> s = State("a", date(2024, 3, 1), 3)
    >>> choose_base(s, s, force=False)
    Base(read_back=False, recovered=False)
    >>> choose_base(s, None, force=False)
    Base(read_back=True, recovered=True)
    >>> choose_base(None, None, force=False), choose_base(s, s, force=True)
    (Base(read_back=True, recovered=False), Base(read_back=True, recovered=False))
    """
    disagree = serving is None or marker is None or marker.sync_id != serving.sync_id
    return Base(
        read_back=force or disagree,
        recovered=disagree and (serving is not None or marker is not None),
    )


@dataclass(frozen=True)
class Plan:
    """The decision of one sync; see :func:`plan_sync`.

    ``older``: the day is older than the synced one. ``write``: what the serving
    transaction writes (:data:`Write`); with ``dry_run`` always ``nothing``.
    """

    status: Literal["applied", "noop", "blocked"]
    reason: str
    verdict: Verdict
    older: bool
    forced: bool
    dry_run: bool
    write: Write

    @property
    def skipped_older(self) -> bool:
        """A day older than the synced one, not forced: skipped as a ``noop``."""
        return self.older and not self.forced


def plan_sync(
    *,
    current: int,
    target: int,
    added: int,
    removed: int,
    previous_as_of: date | None,
    as_of: date,
    settings: SyncSettings,
    force: bool = False,
    dry_run: bool = False,
) -> Plan:
    """Decide the sync of ``as_of`` that turns ``current`` synced members into ``target``.

    ``previous_as_of`` is the day ``sync_state`` holds (None: nothing synced yet).

    * A day older than ``previous_as_of`` is skipped (``noop``, writes nothing) unless
      ``force``: a backfill never rolls the serving table back.
    * Otherwise a change the guardrails refuse is ``blocked`` (writes nothing) unless
      ``force``; the reason is the verdict's text.
    * Otherwise it is ``applied`` when anything is added or removed, else ``noop``; a
      forced sync that overrode a rule says so in its reason (``forced: ...``).
    * ``dry_run`` decides the same status and reason and writes nothing.

    >>> day, synced = date(2024, 3, 2), date(2024, 3, 1)
    >>> strict = SyncSettings(max_removed_ratio=0.5)
    >>> p = plan_sync(current=100, target=40, added=0, removed=60, previous_as_of=synced,
    ...               as_of=day, settings=strict)
    >>> p.status, p.write
    ('blocked', 'nothing')
    >>> print(p.reason)
    60 of 100 synced members (60%) would be removed, more than max_removed_ratio 50%
    >>> p = plan_sync(current=100, target=40, added=0, removed=60, previous_as_of=synced,
    ...               as_of=day, settings=strict, force=True)
    >>> p.status, p.write
    ('applied', 'delta')
    >>> print(p.reason)
    forced: 60 of 100 synced members (60%) would be removed, more than max_removed_ratio 50%
    >>> p = plan_sync(current=5, target=5, added=1, removed=1, previous_as_of=day,
    ...               as_of=synced, settings=strict)
    >>> p.status, p.write, p.skipped_older
    ('noop', 'nothing', True)
    >>> print(p.reason)
    skipped: 2024-03-01 is older than the synced snapshot of 2024-03-02 (use --force to apply it)
    >>> p = plan_sync(current=5, target=5, added=0, removed=0, previous_as_of=synced,
    ...               as_of=day, settings=strict)
    >>> p.status, p.write
    ('noop', 'day')
    >>> p = plan_sync(current=0, target=0, added=0, removed=0, previous_as_of=None,
    ...               as_of=day, settings=strict)
    >>> p.status, p.write
    ('noop', 'state')
    """
    verdict = check_guardrails(
        settings, current=current, target=target, added=added, removed=removed
    )
    older = previous_as_of is not None and as_of < previous_as_of
    changes = added + removed > 0
    status: Literal["applied", "noop", "blocked"]
    reason = ""
    if older and not force:
        status = "noop"
        reason = (
            f"skipped: {as_of} is older than the synced snapshot of {previous_as_of} "
            "(use --force to apply it)"
        )
    elif not verdict.ok and not force:
        status = "blocked"
        reason = verdict.text()
    else:
        status = "applied" if changes else "noop"
        if force and (older or not verdict.ok):
            reason = "forced: " + "; ".join(
                ([f"older than the synced snapshot of {previous_as_of}"] if older else [])
                + list(verdict.reasons)
            )
    write: Write
    if dry_run or status == "blocked" or (older and not force):
        write = "nothing"
    elif status == "applied":
        write = "delta"
    elif previous_as_of is None:
        write = "state"
    else:
        write = "day"
    return Plan(status=status, reason=reason, verdict=verdict, older=older, forced=force,
                dry_run=dry_run, write=write)


def next_state(
    plan: Plan, previous: State | None, *, sync_id: str, as_of: date, members: int
) -> State | None:
    """The segment's state once the serving transaction of ``plan`` has committed.

    ``previous`` is the state the plan was made against; ``sync_id`` is this sync's id;
    ``members`` the day's snapshot size. A delta or a first ``state`` names this sync;
    moving the day keeps the previous sync's id (the rows are the same) with the new day;
    writing nothing keeps ``previous``.

    >>> before = State("old", date(2024, 3, 1), 5)
    >>> p = plan_sync(current=5, target=5, added=0, removed=0,
    ...               previous_as_of=before.as_of, as_of=date(2024, 3, 2),
    ...               settings=SyncSettings())
    >>> next_state(p, before, sync_id="new", as_of=date(2024, 3, 2), members=5)
    State(sync_id='old', as_of=datetime.date(2024, 3, 2), members=5)
    """
    if plan.write in ("delta", "state"):
        return State(sync_id, as_of, members)
    if plan.write == "day":
        if previous is None:
            raise ValueError("a plan that moves the synced day needs the previous state")
        # Not skipped, so the day is not older than the synced one (or it is forced).
        return State(previous.sync_id, as_of, members)
    return previous


@dataclass(frozen=True)
class TrackingUpdate:
    """How the warehouse tracking follows a committed serving transaction.

    ``rebuild``: replace the tracked ids with the base the plan used (read back from
    serving). ``apply_delta``: then remove and add the delta's ids. ``marker``: rewrite
    ``sync.marker`` (set whenever anything is written: the marker names the state the ids
    belong to).
    """

    rebuild: bool
    apply_delta: bool
    marker: bool


def tracking_update(
    plan: Plan, *, read_back: bool, previous: State | None, new: State | None
) -> TrackingUpdate:
    """What to write to the warehouse tracking after the serving commit.

    The tracking must end up saying what serving holds under ``new``: rebuilt from the
    read-back base when the plan used one, the delta applied when serving applied it,
    and otherwise only the marker, when the state moved (a ``noop`` that moved the day).
    A dry run writes nothing.

    >>> p = plan_sync(current=0, target=2, added=2, removed=0, previous_as_of=None,
    ...               as_of=date(2024, 3, 1), settings=SyncSettings())
    >>> tracking_update(p, read_back=True, previous=None, new=State("s", date(2024, 3, 1), 2))
    TrackingUpdate(rebuild=True, apply_delta=True, marker=True)
    """
    if plan.dry_run:
        return TrackingUpdate(rebuild=False, apply_delta=False, marker=False)
    apply_delta = plan.write == "delta"
    if read_back or apply_delta:
        return TrackingUpdate(rebuild=read_back, apply_delta=apply_delta, marker=True)
    return TrackingUpdate(rebuild=False, apply_delta=False, marker=new != previous)


@dataclass(frozen=True)
class SyncResult:
    """What a sync did (or, with ``dry_run``, would do).

    ``status`` is the ``sync_log`` status: ``applied``, ``noop``, ``blocked`` or
    ``failed``. ``skipped_older`` marks a day older than the synced one (a ``noop``).
    ``recovered`` says the warehouse tracking disagreed with the serving database and
    the plan was computed against ``coupon_eligibility`` itself.
    """

    sync_id: str
    segment: str
    as_of: date
    status: str
    added: int
    removed: int
    unchanged: int
    target_size: int
    previous_size: int
    previous_as_of: date | None
    verdict: Verdict
    reason: str
    started_at: datetime
    finished_at: datetime
    duration_s: float
    dry_run: bool = False
    forced: bool = False
    skipped_older: bool = False
    recovered: bool = False
    sample_added: tuple[int, ...] = field(default_factory=tuple)
    sample_removed: tuple[int, ...] = field(default_factory=tuple)
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent planning (DuckDB diff), in the serving transaction, and updating
    the warehouse tracking."""

    @property
    def ok(self) -> bool:
        """True unless the sync was blocked, failed, or skipped as older."""
        return self.status in ("applied", "noop") and not self.skipped_older
