"""The pure decision of a sync (:mod:`sync.plan`): properties over generated member sets,
days and guardrail settings, and a few exact cases."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from project.sync import SyncSettings
from sync.guardrails import check_guardrails
from sync.plan import (
    Plan,
    State,
    choose_base,
    next_state,
    plan_sync,
    tracking_update,
)

D0 = date(2024, 3, 1)

ids = st.frozensets(st.integers(0, 60), max_size=40)
days = st.integers(0, 5).map(lambda n: D0 + timedelta(days=n))
ratios = st.none() | st.floats(0, 2, allow_nan=False)
guardrails = st.builds(
    SyncSettings, max_removed_ratio=ratios, max_added_ratio=ratios,
    min_size=st.integers(0, 30), allow_empty_replace=st.booleans(),
)


@dataclass(frozen=True)
class Case:
    """A generated sync: what serving holds (``base``) and the day's snapshot."""

    base: frozenset[int]
    snapshot: frozenset[int]
    previous_as_of: date | None
    as_of: date
    settings: SyncSettings
    force: bool
    dry_run: bool

    @property
    def added(self) -> int:
        return len(self.snapshot - self.base)

    @property
    def removed(self) -> int:
        return len(self.base - self.snapshot)

    def plan(self, **changes: object) -> Plan:
        case = replace(self, **changes)  # type: ignore[arg-type]
        return plan_sync(
            current=len(case.base), target=len(case.snapshot), added=case.added,
            removed=case.removed, previous_as_of=case.previous_as_of, as_of=case.as_of,
            settings=case.settings, force=case.force, dry_run=case.dry_run,
        )

    def verdict_ok(self) -> bool:
        return check_guardrails(self.settings, current=len(self.base),
                                target=len(self.snapshot), added=self.added,
                                removed=self.removed).ok

    @property
    def older(self) -> bool:
        return self.previous_as_of is not None and self.as_of < self.previous_as_of


cases = st.builds(Case, base=ids, snapshot=ids, previous_as_of=st.none() | days, as_of=days,
                  settings=guardrails, force=st.booleans(), dry_run=st.booleans())


@given(cases)
def test_blocked_iff_guardrails_fail_unforced_and_not_older(case: Case):
    plan = case.plan()
    assert (plan.status == "blocked") == (
        not case.verdict_ok() and not case.force and not case.older)
    if plan.status == "blocked":
        assert plan.reason == plan.verdict.text() and plan.write == "nothing"


@given(cases)
def test_an_older_day_without_force_is_a_noop_that_writes_nothing(case: Case):
    plan = case.plan(force=False)
    assert plan.skipped_older == case.older
    if case.older:
        assert (plan.status, plan.write) == ("noop", "nothing")
        assert plan.reason.startswith(f"skipped: {case.as_of} is older than the synced "
                                      f"snapshot of {case.previous_as_of}")
        assert next_state(plan, State("s", case.previous_as_of, 1), sync_id="new",
                          as_of=case.as_of, members=len(case.snapshot)) == State(
            "s", case.previous_as_of, 1)


@given(cases)
def test_with_force_nothing_is_blocked_or_skipped(case: Case):
    plan = case.plan(force=True)
    assert plan.status != "blocked" and not plan.skipped_older
    overridden = case.older or not case.verdict_ok()
    assert plan.reason.startswith("forced: ") == overridden
    if not overridden:
        assert plan.reason == ""


@given(cases)
def test_applied_iff_there_are_changes_and_they_are_allowed(case: Case):
    plan = case.plan()
    changes = case.added + case.removed > 0
    allowed = case.force or (case.verdict_ok() and not case.older)
    assert (plan.status == "applied") == (changes and allowed)
    assert (plan.status == "noop") == ((not changes and allowed) or (case.older
                                                                   and not case.force))


@given(cases)
def test_a_dry_run_decides_the_same_and_writes_nothing(case: Case):
    real, dry = case.plan(dry_run=False), case.plan(dry_run=True)
    assert (dry.status, dry.reason, dry.verdict, dry.skipped_older) == (
        real.status, real.reason, real.verdict, real.skipped_older)
    assert dry.write == "nothing"
    previous = State("s", case.previous_as_of, len(case.base)) if case.previous_as_of else None
    assert next_state(dry, previous, sync_id="new", as_of=case.as_of,
                      members=len(case.snapshot)) == previous
    update = tracking_update(dry, read_back=True, previous=previous, new=None)
    assert not (update.rebuild or update.apply_delta or update.marker)


@given(cases)
def test_what_is_written_follows_the_status(case: Case):
    plan = case.plan(dry_run=False)
    expected = {
        "applied": "delta",
        "blocked": "nothing",
        "noop": ("nothing" if plan.skipped_older
                 else "state" if case.previous_as_of is None else "day"),
    }[plan.status]
    assert plan.write == expected


@given(cases)
def test_the_synced_day_never_moves_back_unless_forced(case: Case):
    plan = case.plan(dry_run=False)
    previous = State("s", case.previous_as_of, 7) if case.previous_as_of else None
    new = next_state(plan, previous, sync_id="new", as_of=case.as_of,
                     members=len(case.snapshot))
    if previous is not None and not case.force:
        assert new is not None and new.as_of is not None and new.as_of >= previous.as_of
    if plan.write == "day":  # same rows: same sync, the new day
        assert new == State("s", case.as_of, len(case.snapshot))
    if plan.write in ("delta", "state"):
        assert new == State("new", case.as_of, len(case.snapshot))


@given(cases)
def test_applying_the_plan_to_a_model_then_planning_again_is_a_noop(case: Case):
    """Convergence: after the writes of a plan, the same sync finds nothing to do (and so
    does the one after: idempotent), unless it was refused (blocked or skipped)."""
    case = replace(case, dry_run=False)
    plan = case.plan()
    previous = State("s0", case.previous_as_of, len(case.base)) if case.previous_as_of else None
    rows = set(case.snapshot) if plan.write == "delta" else set(case.base)
    state = next_state(plan, previous, sync_id="s1", as_of=case.as_of,
                       members=len(case.snapshot))
    again = case.plan(base=frozenset(rows),
                      previous_as_of=state.as_of if state is not None else None)
    if plan.status == "blocked" or plan.skipped_older:
        assert rows == case.base and state == previous
        assert again.status == plan.status
        return
    assert rows == case.snapshot
    assert (again.status, again.write) == ("noop", "day")
    third = case.plan(base=frozenset(rows), previous_as_of=case.as_of)
    assert (third.status, third.write, third.reason) == (again.status, again.write,
                                                         again.reason)


@given(st.none() | st.builds(State, st.sampled_from(["a", "b"]), days, st.integers(0, 9)),
       st.none() | st.builds(State, st.sampled_from(["a", "b", None]), days,
                             st.integers(0, 9)),
       st.booleans())
def test_the_tracking_is_trusted_only_when_it_names_the_serving_sync(serving, marker, force):
    base = choose_base(serving, marker, force=force)
    agree = serving is not None and marker is not None and marker.sync_id == serving.sync_id
    assert base.read_back == (force or not agree)
    assert base.recovered == (not agree and (serving is not None or marker is not None))
    assert not base.recovered or base.read_back


@given(cases, st.booleans())
def test_the_tracking_follows_what_serving_committed(case: Case, read_back: bool):
    plan = case.plan()
    previous = State("s", case.previous_as_of, len(case.base)) if case.previous_as_of else None
    new = next_state(plan, previous, sync_id="new", as_of=case.as_of,
                     members=len(case.snapshot))
    update = tracking_update(plan, read_back=read_back, previous=previous, new=new)
    if case.dry_run:
        assert not (update.rebuild or update.apply_delta or update.marker)
        return
    assert update.rebuild == read_back
    assert update.apply_delta == (plan.write == "delta")
    assert update.marker == (read_back or plan.write == "delta" or new != previous)


# -- exact cases -----------------------------------------------------------------------

D1, D2 = date(2024, 3, 1), date(2024, 3, 2)


def test_first_sync():
    plan = plan_sync(current=0, target=3, added=3, removed=0, previous_as_of=None, as_of=D1,
                     settings=SyncSettings())
    assert (plan.status, plan.write, plan.reason, plan.older) == ("applied", "delta", "", False)
    assert next_state(plan, None, sync_id="x", as_of=D1, members=3) == State("x", D1, 3)


def test_first_sync_of_an_empty_segment_records_the_state():
    plan = plan_sync(current=0, target=0, added=0, removed=0, previous_as_of=None, as_of=D1,
                     settings=SyncSettings(min_size=0))
    assert (plan.status, plan.write) == ("noop", "state")


def test_forced_older_and_blocked_names_both_reasons():
    plan = plan_sync(current=100, target=40, added=0, removed=60, previous_as_of=D2,
                     as_of=D1, settings=SyncSettings(max_removed_ratio=0.5), force=True)
    assert (plan.status, plan.write) == ("applied", "delta")
    assert plan.reason == (
        "forced: older than the synced snapshot of 2024-03-02; 60 of 100 synced members "
        "(60%) would be removed, more than max_removed_ratio 50%")


def test_older_day_wins_over_the_guardrails():
    plan = plan_sync(current=100, target=0, added=0, removed=100, previous_as_of=D2,
                     as_of=D1, settings=SyncSettings())
    assert (plan.status, plan.write, plan.skipped_older) == ("noop", "nothing", True)
    assert plan.reason == ("skipped: 2024-03-01 is older than the synced snapshot of "
                           "2024-03-02 (use --force to apply it)")


def test_an_empty_snapshot_is_blocked_unless_allowed():
    blocked = plan_sync(current=5, target=0, added=0, removed=5, previous_as_of=D1, as_of=D2,
                        settings=SyncSettings(max_removed_ratio=None))
    assert blocked.status == "blocked"
    assert blocked.reason == ("an empty snapshot would replace 5 synced members "
                              "(allow_empty_replace is false)")
    allowed = plan_sync(current=5, target=0, added=0, removed=5, previous_as_of=D1, as_of=D2,
                        settings=SyncSettings(max_removed_ratio=None,
                                              allow_empty_replace=True))
    assert (allowed.status, allowed.write) == ("applied", "delta")


@pytest.mark.parametrize("day", [D1, D2])
def test_no_changes_on_the_synced_day_or_later_moves_the_day(day):
    plan = plan_sync(current=4, target=4, added=0, removed=0, previous_as_of=D1, as_of=day,
                     settings=SyncSettings())
    assert (plan.status, plan.write, plan.reason) == ("noop", "day", "")
    assert next_state(plan, State("s", D1, 4), sync_id="x", as_of=day, members=4) == State(
        "s", day, 4)
