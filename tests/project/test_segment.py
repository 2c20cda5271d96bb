"""The SEGMENT kind: headers, kinds, located errors, references between segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from kequn.errors import KequnError, KequnErrors
from project.combine import parse_combine_text, render
from project.loader import load_project
from project.loader import read_definition as read_segment
from project.segment import Checks
from tests.segments.conftest import SEGMENTS_DIR, write

RULE = """-- Test rule.
SEGMENT (
  name {name},
  kind rule,
  owner 'team:growth',
  rule '{rule}',
);
"""


def problems(path: Path) -> list[str]:
    """Every problem reported for the file, as headlines."""
    with pytest.raises(KequnError) as info:
        read_segment(path)
    return headlines(info.value)


def headlines(exc: KequnError) -> list[str]:
    found = exc.errors if isinstance(exc, KequnErrors) else [exc]
    return [e.headline() for e in found]


def test_example_project_loads_every_kind() -> None:
    project = load_project(SEGMENTS_DIR.parent)
    assert project.problems() == []
    kinds = {s.kind for s in project.segments.values()}
    assert kinds == {"rule", "sql", "file", "combine"}
    wake_up = project.segments["wake_up"]
    assert wake_up.owner == "team:growth"
    assert wake_up.shared_with == ("team:marketing", "team:ops")
    assert wake_up.checks == Checks(min_size=1, max_size=None, max_change_ratio=0.5)
    assert wake_up.sync is not None and wake_up.sync.schedule == "06:00"
    assert project.segments["vip_list"].match == "phone"
    assert project.segments["wake_up_campaign"].referenced_segments() == [
        "wake_up", "vip_list", "overdue_now"]


def test_header_errors_are_collected_and_located(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.sql", """SEGMENT (
  name Bad-Name,
  kind rules,
  owner growth,
  min_size lots,
);
""")
    with pytest.raises(KequnError) as info:
        read_segment(path)
    assert headlines(info.value) == [
        f"{path}:2:8: segment name 'Bad-Name' is not snake_case (a lowercase letter, then "
        "a-z, 0-9 or _)",
        f"{path}:3:8: 'kind' must be one of rule, sql, file, combine, not 'rules' "
        "(did you mean 'rule'?)",
        f"{path}:4:9: owner 'growth' is not a team: write 'team:<department>' with a "
        "snake_case department",
        f"{path}:5:12: 'min_size' must be a whole number, not 'lots'",
    ]


def test_unknown_header_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path / "x.sql", "SEGMENT (\n  name x,\n  kind rule,\n  ownr 'team:a',\n);\n")
    with pytest.raises(KequnError) as info:
        read_segment(path)
    assert headlines(info.value) == [
        f"{path}:1:1: SEGMENT header has no 'rule' (a rule segment needs rule '<condition>')",
        f"{path}:4:3: unknown key 'ownr' in the SEGMENT header (did you mean 'owner'?)"]


def test_missing_header_shows_a_sample(tmp_path: Path) -> None:
    path = write(tmp_path / "x.sql", "SELECT customer_id FROM raw.customers\n")
    with pytest.raises(KequnError) as info:
        read_segment(path)
    assert "SEGMENT (" in info.value.message and "kind rule" in info.value.message


def test_kind_specific_fields(tmp_path: Path) -> None:
    sql = write(tmp_path / "s.sql", "SEGMENT (name s, kind sql, owner 'team:a');\n")
    rule = write(tmp_path / "r.sql", "SEGMENT (name r, kind rule, owner 'team:a');\n"
                                     "SELECT 1\n")
    combine = write(tmp_path / "c.sql", "SEGMENT (name c, kind combine, owner 'team:a', "
                                        "union (a));\n")
    f = write(tmp_path / "f.sql", "SEGMENT (name f, kind file, owner 'team:a', match email, "
                                  "file 'nope.csv');\n")
    assert problems(sql) == [
        f"{sql}:2:1: a sql segment needs a SELECT after the header returning customer_id"]
    assert problems(rule) == [
        f"{rule}:1:1: SEGMENT header has no 'rule' (a rule segment needs rule '<condition>')",
        f"{rule}:2:1: a rule segment has no SQL body; remove the text after the header"]
    assert problems(combine) == [
        f"{combine}:1:54: 'union' needs at least two segments, e.g. union (a, b)"]
    found = problems(f)
    assert found[0] == (f"{f}:1:51: 'match' must be one of id, phone, phone_hash, not 'email'")
    assert found[1].startswith(f"{f}:1:63: file 'nope.csv' does not exist")


def test_combine_references_duplicates_and_cycles(tmp_path: Path) -> None:
    folder = tmp_path / "segments"
    write(folder / "a.sql", RULE.format(name="a", rule="1 = 1"))
    write(folder / "a2.sql", RULE.format(name="a", rule="1 = 1"))
    write(folder / "b.sql", "SEGMENT (name b, kind combine, owner 'team:a', "
                            "expression 'a UNION c');\n")
    write(folder / "c.sql", "SEGMENT (name c, kind combine, owner 'team:a', "
                            "expression '(b) EXCEPT wake_upp');\n")
    project = load_project(tmp_path)
    found = [e.headline() for e in project.problems()]
    assert f"{folder / 'a2.sql'}:3:8: segment 'a' is also defined in a.sql" in found
    assert f"{folder / 'c.sql'}:1:71: unknown segment 'wake_upp'" in found
    assert any("combine cycle: b -> c -> b" in f for f in found)
    assert list(project.segments) == ["a"]  # the rest is broken; 'a' still builds


def test_combine_expression_precedence_and_errors() -> None:
    assert render(parse_combine_text("a UNION b INTERSECT c EXCEPT d")) == \
        "(a UNION (b INTERSECT c)) EXCEPT d"
    assert render(parse_combine_text("((a))")) == "a"
    with pytest.raises(KequnError, match=r"1:9: expected a segment name, found 'UNION'"):
        parse_combine_text("a UNION UNION b")
    with pytest.raises(KequnError, match=r"expected '\)'"):
        parse_combine_text("(a UNION b")
    with pytest.raises(KequnError, match=r"unexpected 'b'"):
        parse_combine_text("a b")


def test_sync_keys_are_accepted_and_attached(tmp_path: Path) -> None:
    path = write(tmp_path / "s.sql", RULE.format(name="s", rule="drawn").replace(
        ");", "  sync on,\n  sync_schedule '07:30',\n  max_removed_ratio 0.2,\n);"))
    segment = read_segment(path)
    assert segment.sync.cron == "30 7 * * *"
    assert segment.sync.max_removed_ratio == 0.2


def test_an_edited_copy_outside_the_project_replaces_its_segment(tmp_path: Path) -> None:
    root = tmp_path / "segments"
    write(root / "a.sql", RULE.format(name="a", rule="1 = 1"))
    copy = write(tmp_path / "drafts" / "a.sql", RULE.format(name="a", rule="2 = 2"))
    project = load_project(tmp_path, drafts=[copy])
    assert project.problems() == [] and project.segments["a"].rule == "2 = 2"
    assert project.segments["a"].path == copy
