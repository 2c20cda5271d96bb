"""Sync settings from SEGMENT headers, and the guardrail verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kequn.errors import KequnErrors, ValidationError
from kequn.header import parse_definition_text
from serving.guardrails import check_guardrails
from serving.sync_settings import (
    SYNC_KEYS,
    SyncSettings,
    cron_problem,
    schedule_to_cron,
    sync_settings_from_header,
)

PATH = Path("sql/segments/vip.sql")


def header(*lines: str):
    text = "SEGMENT (\n  name vip,\n" + "".join(f"  {line},\n" for line in lines) + ");\n"
    return parse_definition_text(text, PATH, {"SEGMENT": "SEGMENT (name x);"})


def test_keys():
    assert {"sync", "sync_schedule", "max_removed_ratio", "max_added_ratio", "min_size",
            "allow_empty_replace"} == set(SYNC_KEYS)


def test_not_synced_without_sync_keys_or_when_off():
    assert sync_settings_from_header(header()) is None
    assert sync_settings_from_header(header("sync off", "max_removed_ratio 0.2")) is None
    assert sync_settings_from_header(header("min_size 10")) is None  # a segment check alone


def test_defaults():
    settings = sync_settings_from_header(header("sync on"))
    assert settings == SyncSettings()
    assert (settings.cron, settings.max_removed_ratio, settings.max_added_ratio,
            settings.min_size, settings.allow_empty_replace) == ("0 6 * * *", 0.5, None, 0, False)


def test_every_setting():
    settings = sync_settings_from_header(header(
        "sync_schedule '30 5 * * 1-5'", "max_removed_ratio 30%", "max_added_ratio 2",
        "min_size 100", "allow_empty_replace true"))
    assert settings == SyncSettings(cron="30 5 * * 1-5", schedule="30 5 * * 1-5",
                                    max_removed_ratio=0.3, max_added_ratio=2.0, min_size=100,
                                    allow_empty_replace=True)
    assert sync_settings_from_header(header("sync on", "max_removed_ratio none")
                                     ).max_removed_ratio is None


@pytest.mark.parametrize(("text", "cron"), [
    ("daily", "0 6 * * *"), ("DAILY", "0 6 * * *"), ("07:05", "5 7 * * *"), ("0:00", "0 0 * * *"),
    ("*/15 8-18 * * mon-fri", "*/15 8-18 * * mon-fri"), ("0  6 1 jan *", "0 6 1 jan *"),
])
def test_schedule_forms(text, cron):
    assert schedule_to_cron(text) == cron


@pytest.mark.parametrize("cron", ["0 6 * *", "60 * * * *", "0 6 32 * *", "0 6 * 13 *",
                                  "0 6 * * 8", "a b c d e", "0 9-7 * * *", "*/0 * * * *"])
def test_bad_crons(cron):
    assert cron_problem(cron)


def test_errors_point_at_the_values():
    defn = header("sync maybe")
    with pytest.raises(ValidationError) as exc:
        sync_settings_from_header(defn)
    assert exc.value.headline() == (
        "sql/segments/vip.sql:3:8: 'sync' must be on, off or coupon_eligibility, not 'maybe'")

    defn = header("sync_schedule '25:00'", "max_removed_ratio lots", "min_size 1.5",
                  "allow_empty_replace perhaps")
    with pytest.raises(KequnErrors) as many:
        sync_settings_from_header(defn)
    assert [e.headline() for e in many.value.errors] == [
        "sql/segments/vip.sql:3:17: sync_schedule '25:00' is not a time of day "
        "(HH:MM, 00:00-23:59)",
        "sql/segments/vip.sql:4:21: 'max_removed_ratio' must be a ratio such as 0.5 or 50%, "
        "not 'lots'",
        "sql/segments/vip.sql:5:12: 'min_size' must be a whole number of members, not '1.5'",
        "sql/segments/vip.sql:6:23: 'allow_empty_replace' must be true or false, not 'perhaps'",
    ]


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
