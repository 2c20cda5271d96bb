"""The guardrail verdicts: when a planned sync is blocked, and why."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from project.sync import SyncSettings
from sync.guardrails import check_guardrails


def test_guardrail_texts():
    s = SyncSettings(max_removed_ratio=0.5, max_added_ratio=1.0, min_size=3)
    assert check_guardrails(s, current=10, target=10, added=5, removed=5).ok
    verdict = check_guardrails(s, current=10, target=0, added=0, removed=10)
    assert verdict.reasons == (
        "an empty snapshot would replace 10 synced members (allow_empty_replace is false)",
        "the snapshot has 0 members, below min_size 3",
        "10 of 10 synced members (100%) would be removed, more than max_removed_ratio 50%",
    )
    assert check_guardrails(s, current=4, target=13, added=9, removed=0).reasons == (
        "9 members would be added to 4 (225%), more than max_added_ratio 100%",)


@given(current=st.integers(0, 10_000), target=st.integers(0, 10_000),
       churn=st.floats(0, 1))
def test_no_limits_means_never_blocked_except_empty_replace(current, target, churn):
    removed = int(current * churn)
    added = max(0, target - (current - removed))
    verdict = check_guardrails(SyncSettings(max_removed_ratio=None, allow_empty_replace=True),
                               current=current, target=target, added=added, removed=removed)
    assert verdict.ok
