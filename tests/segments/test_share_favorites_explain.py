"""Sharing rewrites the definition atomically; favourites persist; explain reads tag values."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from kequn.errors import KequnError
from plan.segments import compile_segment
from project.edit import ensure_file_segment, share
from project.loader import read_definition as read_segment
from segments.explain import explain
from segments.favorites import add_favorite, favorites_of, remove_favorite
from tests.segments.conftest import DAY2, write

TEXT = """-- Keep this comment.
SEGMENT (
  name s,
  kind rule,
  owner 'team:growth',
  description 'x',
  rule 'credit_granted AND (city = ''Shanghai'' OR overdue_days IS NULL)',
);
"""


def test_share_adds_the_field_then_edits_it_in_place(tmp_path: Path) -> None:
    path = write(tmp_path / "s.sql", TEXT)
    assert share(read_segment(path), "team:ops") == ["team:ops"]
    text = path.read_text()
    assert "shared_with (team:ops)" in text and text.startswith("-- Keep this comment.")
    assert share(read_segment(path), "team:risk") == ["team:ops", "team:risk"]
    assert read_segment(path).shared_with == ("team:ops", "team:risk")
    assert share(read_segment(path), "team:ops", remove=True) == ["team:risk"]
    assert read_segment(path).rule == ("credit_granted AND (city = 'Shanghai' OR "
                                       "overdue_days IS NULL)")
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind
    with pytest.raises(KequnError, match="'ops' is not a team: write 'team:<department>'"):
        share(read_segment(path), "ops")


def test_favorites_are_stored_per_user(wide: Path) -> None:
    con = duckdb.connect(str(wide))
    assert add_favorite(con, "li", "a") and not add_favorite(con, "li", "a")
    add_favorite(con, "li", "b")
    add_favorite(con, "wang", "a")
    con.close()
    con = duckdb.connect(str(wide))  # durable across connections
    assert favorites_of(con, "li") == ["a", "b"]
    assert remove_favorite(con, "li", "a") and not remove_favorite(con, "li", "a")
    assert favorites_of(con, "li") == ["b"] and favorites_of(con, "wang") == ["a"]


def test_explain_shows_each_condition_with_tag_values(wide: Path, tmp_path: Path) -> None:
    segment = read_segment(write(tmp_path / "s.sql", TEXT))
    compiled = compile_segment(segment)
    con = duckdb.connect(str(wide), read_only=True)
    inside = explain(con, compiled, 1, DAY2)
    assert inside.member is True
    assert [(c.condition, c.values, c.result) for c in inside.conditions] == [
        ("credit_granted", {"credit_granted": True}, True),
        ("city = 'Shanghai'", {"city": "Shanghai"}, True),
        ("overdue_days IS NULL", {"overdue_days": None}, True),
    ]
    outside = explain(con, compiled, 2, DAY2)
    assert outside.member is False
    assert [c.result for c in outside.conditions] == [True, False, False]
    assert "customer 2 is not a member of segment 's' on business day 2025-06-30" \
        in outside.render()
    unknown = explain(con, compiled, 999, DAY2)
    assert unknown.member is False and "no row in tags.customer_tags" in unknown.render()


def test_new_file_definition_is_written_once(tmp_path: Path) -> None:
    path, created = ensure_file_segment(tmp_path, "promo", "phone")
    assert created and read_segment(path).match == "phone"
    assert ensure_file_segment(tmp_path, "promo", "phone") == (path, False)
    write(tmp_path / "r.sql", TEXT.replace("name s", "name r"))
    with pytest.raises(KequnError, match="is a rule segment, not a file segment"):
        ensure_file_segment(tmp_path, "r", "id")
