"""Sync settings from SEGMENT headers (the sync fields of the SEGMENT kind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kequn.errors import KequnError, raise_collected
from kequn.header import parse_header
from project import segment
from project.fields import read_fields
from project.sync import FIELDS, SyncSettings, cron_problem, schedule_to_cron, sync_settings

PATH = Path("sql/segments/vip.sql")


def header(*lines: str):
    text = "SEGMENT (\n  name vip,\n" + "".join(f"  {line},\n" for line in lines) + ");\n"
    return parse_header(text, PATH, {"SEGMENT": "SEGMENT (name x);"})


def sync_settings_from_header(definition) -> SyncSettings | None:
    """The sync settings of a SEGMENT header, its field errors raised together."""
    errors: list[KequnError] = []
    values = read_fields(definition, segment.FIELDS, errors)
    raise_collected([e for e in errors if "header has no" not in e.message])
    return sync_settings(values)


def test_keys():
    assert {"sync", "sync_schedule", "max_removed_ratio", "max_added_ratio",
            "allow_empty_replace"} == {f.key for f in FIELDS}
    assert {f.key for f in FIELDS} | {"min_size"} <= {f.key for f in segment.FIELDS}


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
    with pytest.raises(KequnError) as exc:
        sync_settings_from_header(defn)
    assert exc.value.headline() == (
        "sql/segments/vip.sql:3:8: 'sync' must be on, off or coupon_eligibility, not 'maybe'")

    defn = header("sync_schedule '25:00'", "max_removed_ratio lots", "min_size 1.5",
                  "allow_empty_replace perhaps")
    with pytest.raises(KequnError) as many:
        sync_settings_from_header(defn)
    assert [e.headline() for e in many.value.errors] == [
        "sql/segments/vip.sql:3:17: sync_schedule '25:00' is not a time of day "
        "(HH:MM, 00:00-23:59)",
        "sql/segments/vip.sql:4:21: 'max_removed_ratio' must be a ratio such as 0.5 or 50%, "
        "not 'lots'",
        "sql/segments/vip.sql:5:12: 'min_size' must be a whole number, not '1.5'",
        "sql/segments/vip.sql:6:23: 'allow_empty_replace' must be true or false, not 'perhaps'",
    ]
