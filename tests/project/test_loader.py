"""The one loader: the same rules for every kind, errors collected in file order and capped,
a broken file only breaking itself and what needs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kequn.errors import MAX_SHOWN, KequnErrors
from project.loader import KINDS, load_project
from tests.segments.conftest import write

TAG = """TAG (
  name {name}, title 't', description 'd', owner '{owner}',
  category_l1 x, category_l2 y, value_type boolean,
);
SELECT customer_id, TRUE AS {name} FROM raw.customers
"""
SEGMENT = "SEGMENT (name {name}, kind rule, owner '{owner}', rule '{rule}');\n"
CAMPAIGN = """name: {name}
owner: {owner}
type: credit
target_segment: s
window_start: 2026-01-01
window_end: 2026-01-31
interest_free_days: 7
validity_days: 3
total_stock: 10
"""


def project_with(root: Path, owner: str) -> list[str]:
    """A project with one tag, one segment and one campaign, all owned by ``owner``;
    returns the problems' messages, by kind."""
    write(root / "tags" / "x" / "t.sql", TAG.format(name="t", owner=owner))
    write(root / "segments" / "s.sql", SEGMENT.format(name="s", owner=owner, rule="t"))
    write(root / "campaigns" / "c.yaml", CAMPAIGN.format(name="c", owner=owner))
    project = load_project(root)
    return [e.message for e in project.problems()]


@pytest.mark.parametrize("owner", ["team:9ops", "team:risk.ops", "growth", "team:Risk"])
def test_owners_follow_one_rule_in_every_kind(tmp_path: Path, owner: str) -> None:
    messages = project_with(tmp_path, owner)
    expected = (f"owner '{owner}' is not a team: write 'team:<department>' with a snake_case "
                "department")
    assert messages == [expected] * 3


def test_a_valid_owner_is_valid_in_every_kind(tmp_path: Path) -> None:
    messages = project_with(tmp_path, "team:risk_ops")
    # the campaign targets segment 's', which is not synced: the only problem left
    assert messages == ["segment 's' is not synced, so no customer is ever eligible for "
                        "campaign 'c'"]


def test_every_kind_is_declared_once() -> None:
    assert [k.name for k in KINDS] == ["tag", "segment", "campaign", "rule"]
    for kind in KINDS:
        keys = [f.key for f in kind.fields]
        assert len(keys) == len(set(keys)), kind.name
        assert "name" in keys and kind.sample.lstrip("-").split()


def test_a_missing_project_folder_is_an_empty_project(tmp_path: Path) -> None:
    project = load_project(tmp_path / "nowhere")
    assert (project.tags, project.segments, project.campaigns, project.problems()) == (
        {}, {}, {}, [])


def test_many_problems_are_reported_and_the_report_is_capped(tmp_path: Path) -> None:
    for i in range(MAX_SHOWN + 7):
        write(tmp_path / "segments" / f"s{i:03}.sql", f"SEGMENT (name s{i:03}, kind nope);\n")
    problems = load_project(tmp_path).problems()
    assert len(problems) == 2 * (MAX_SHOWN + 7)  # unknown kind, missing owner: every file
    rendered = KequnErrors(problems).render()
    assert f"... and {len(problems) - MAX_SHOWN} more" in rendered
    assert rendered.endswith(f"{len(problems)} problems found.")


def test_errors_of_a_file_come_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path / "segments" / "s.sql",
                 "SEGMENT (\n  kind nope,\n  name Bad,\n  owner x,\n);\n")
    problems = load_project(tmp_path).problems()
    assert [(e.path, e.line) for e in problems] == [(path, 2), (path, 3), (path, 4)]


def test_a_broken_tag_breaks_what_needs_it_and_nothing_else(tmp_path: Path) -> None:
    write(tmp_path / "tags" / "x" / "t.sql", TAG.format(name="t", owner="nobody"))
    write(tmp_path / "tags" / "x" / "u.sql", TAG.format(name="u", owner="team:a"))
    write(tmp_path / "segments" / "on_t.sql",
          SEGMENT.format(name="on_t", owner="team:a", rule="t AND u"))
    write(tmp_path / "segments" / "on_u.sql",
          SEGMENT.format(name="on_u", owner="team:a", rule="u"))
    write(tmp_path / "segments" / "both.sql",
          "SEGMENT (name both, kind combine, owner 'team:a', union (on_t, on_u));\n")
    project = load_project(tmp_path)
    assert list(project.tags) == ["u"] and list(project.segments) == ["on_u"]
    assert [e.message for e in project.problems()] == [
        "owner 'nobody' is not a team: write 'team:<department>' with a snake_case department"]
    waiting = {name: b.upstream for (kind, name), b in project.broken.items() if not b.errors}
    assert waiting == {"on_t": (("tag", "t"),), "both": (("segment", "on_t"),)}
    assert "segment 'on_t' (segments/on_t.sql) is broken" in project.broken[
        ("segment", "both")].reason
