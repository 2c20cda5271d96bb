"""The TAG kind: the example project, and one broken project per error kind, each
reported as the exact ``file:line:col: message``."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kequn.errors import KequnErrors, raise_collected
from project.loader import load_project
from project.model import Project
from tests.tags.conftest import TAGS_DIR

HEADER = """-- test tag
TAG (
  name {name},
  title 'T',
  description 'D',
  owner {owner},
  category_l1 {l1},
  category_l2 x,
  value_type {vtype},
{extra});
{body}
"""
DRAWN = ("SELECT customer_id, bool_or(disbursed_at < $as_of_end) AS drawn\n"
         "FROM raw.loans\nWHERE disbursed_at < $as_of_end\nGROUP BY customer_id")
LIMIT = ("SELECT customer_id, max(credit_limit) AS credit_limit\n"
         "FROM raw.credit_applications\nGROUP BY customer_id")


def tag_file(name: str, body: str, *, l1: str = "loans", vtype: str = "boolean",
             owner: str = "'team:growth'", extra: str = "") -> str:
    return HEADER.format(name=name, body=body, l1=l1, vtype=vtype, owner=owner, extra=extra)


def load_tags(root: Path) -> Project:
    """The project whose tags folder is ``root``; its tag problems raised together."""
    project = load_project(root.parent, folders={"tag": root})
    raise_collected(project.problems("tag"))
    return project


def problems(tmp_path: Path, files: dict[str, str]) -> list[str]:
    """Write ``files`` under tmp/tags, load them, return each error's headline (relative)."""
    root = tmp_path / "tags"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    with pytest.raises(KequnErrors) as err:
        load_tags(root)
    return [e.headline().replace(f"{root}/", "") for e in err.value.errors]


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project(TAGS_DIR.parent)


def test_example_project_loads(project: Project) -> None:
    assert project.problems() == []
    atomic, derived = project.atomic_tags(), project.derived_tags()
    assert len(atomic) >= 15 and len(derived) >= 6
    assert {"credit_granted", "drawn", "overdue", "overdue_days"} <= set(project.tags)
    assert {t.category_l1 for t in atomic} >= {"profile", "credit", "loans", "repayment"}
    names = list(project.tags)
    for tag in derived:  # topological: inputs come first
        assert all(names.index(d) < names.index(tag.name) for d in tag.depends_on)
    for tag in project.tags.values():
        assert tag.owner.startswith("team:") and tag.title and tag.description
        assert tag.path.stem == tag.name and tag.path.parent.name == tag.category_l1
    assert project.tag("overdue").source == "raw.installments"
    assert project.tag("wake_up_target").depends_on == (
        "granted_not_drawn", "is_staff", "ever_overdue", "registered_days")
    assert project.tag("overdue").tables == ("raw.installments", "raw.loans")


def test_definition_hash_ignores_wording_but_not_logic(tmp_path: Path) -> None:
    root = tmp_path / "tags"
    (root / "loans").mkdir(parents=True)
    path = root / "loans" / "drawn.sql"
    path.write_text(tag_file("drawn", DRAWN))
    first = load_tags(root).tag("drawn").definition_hash
    path.write_text(tag_file("drawn", DRAWN).replace("title 'T'", "title 'Other'"))
    assert load_tags(root).tag("drawn").definition_hash == first
    path.write_text(tag_file("drawn", DRAWN.replace("<", "<=")))
    assert load_tags(root).tag("drawn").definition_hash != first


def test_unknown_tag_reference_suggests_a_name(tmp_path: Path) -> None:
    assert problems(tmp_path, {
        "loans/drawn.sql": tag_file("drawn", DRAWN),
        "mkt/idle.sql": tag_file("idle", "NOT drawm", l1="mkt"),
    }) == ["mkt/idle.sql:11:5: unknown tag 'drawm' in the expression of 'idle' "
           "(did you mean 'drawn'?)"]


def test_cycle_among_derived_tags(tmp_path: Path) -> None:
    assert problems(tmp_path, {
        "mkt/a.sql": tag_file("a", "b AND TRUE", l1="mkt"),
        "mkt/b.sql": tag_file("b", "c OR FALSE", l1="mkt"),
        "mkt/c.sql": tag_file("c", "NOT a", l1="mkt"),
    }) == ["mkt/a.sql:11:1: derived tags form a cycle: a -> b -> c -> a"]


def test_duplicate_names_name_both_files(tmp_path: Path) -> None:
    assert problems(tmp_path, {
        "loans/drawn.sql": tag_file("drawn", DRAWN),
        "other/drawn.sql": tag_file("drawn", DRAWN, l1="other"),
    }) == ["other/drawn.sql:3:8: tag 'drawn' is also defined in loans/drawn.sql"]


def test_type_error_points_at_the_wrong_operand(tmp_path: Path) -> None:
    assert problems(tmp_path, {
        "loans/drawn.sql": tag_file("drawn", DRAWN),
        "credit/credit_limit.sql": tag_file("credit_limit", LIMIT, l1="credit", vtype="decimal"),
        "mkt/odd.sql": tag_file("odd", "credit_limit AND drawn", l1="mkt"),
    }) == ["mkt/odd.sql:11:1: AND needs boolean operands, but 'credit_limit' is decimal"]


def test_type_error_in_header_expression_and_declared_type(tmp_path: Path) -> None:
    assert problems(tmp_path, {
        "loans/drawn.sql": tag_file("drawn", DRAWN),
        "mkt/n.sql": tag_file("n", "", l1="mkt", vtype="integer",
                              extra="  expression 'drawn OR 1 > 0',\n"),
        "mkt/s.sql": tag_file("s", "", l1="mkt", vtype="string",
                              extra="  expression 'CASE WHEN drawn THEN 1 ELSE ''x'' END',\n"),
    }) == ["mkt/n.sql:10:15: the expression is boolean but 'n' declares value_type integer",
           "mkt/s.sql:10:43: CASE mixes integer and string: 'x' is string"]


def test_sql_that_does_not_parse(tmp_path: Path) -> None:
    body = "SELECT customer_id, count(* AS loan_count\nFROM raw.loans\nGROUP BY customer_id"
    assert problems(tmp_path, {
        "loans/loan_count.sql": tag_file("loan_count", body, vtype="integer"),
    }) == ["loans/loan_count.sql:11:29: SQL does not parse: Expecting )"]


def test_query_must_return_customer_id_and_its_column(tmp_path: Path) -> None:
    wrong_alias = "SELECT customer_id, count(*) AS loan_cnt\nFROM raw.loans\nGROUP BY customer_id"
    no_id = "SELECT count(*) AS loans_total\nFROM raw.loans"
    extra = ("SELECT customer_id, count(*) AS n_loans, 1 AS extra\nFROM raw.loans\n"
             "GROUP BY customer_id")
    assert problems(tmp_path, {
        "loans/loan_count.sql": tag_file("loan_count", wrong_alias, vtype="integer"),
        "loans/loans_total.sql": tag_file("loans_total", no_id, vtype="integer"),
        "loans/n_loans.sql": tag_file("n_loans", extra, vtype="integer"),
    }) == [
        "loans/loan_count.sql:11:21: the query must return exactly customer_id and loan_count, "
        "but returns customer_id, loan_cnt (did you mean 'loan_count'?)",
        "loans/loans_total.sql:11:8: the query must return exactly customer_id and "
        "loans_total, but returns loans_total",
        "loans/n_loans.sql:11:42: the query must return exactly customer_id and n_loans, "
        "but returns customer_id, n_loans, extra",
    ]


def test_owner_must_be_a_team(tmp_path: Path) -> None:
    assert problems(tmp_path, {
        "loans/drawn.sql": tag_file("drawn", DRAWN, owner="'credit_risk'"),
    }) == ["loans/drawn.sql:6:9: owner 'credit_risk' is not a team: write 'team:<department>' "
           "with a snake_case department"]


def test_bad_value_type_suggests_one(tmp_path: Path) -> None:
    assert problems(tmp_path, {
        "loans/drawn.sql": tag_file("drawn", DRAWN, vtype="bool"),
    }) == ["loans/drawn.sql:9:14: unknown value_type 'bool' (one of boolean, integer, decimal, "
           "string, date) (did you mean 'boolean'?)"]


def test_missing_required_keys(tmp_path: Path) -> None:
    text = "TAG (\n  name drawn,\n  category_l1 loans,\n  value_type boolean,\n);\n" + DRAWN
    assert problems(tmp_path, {"loans/drawn.sql": text}) == [
        "loans/drawn.sql:1:1: TAG header has no 'title', 'description', 'owner', 'category_l2' "
        "(required: name, title, description, owner, category_l1, category_l2, value_type)"]


def test_unknown_header_key_suggests_one(tmp_path: Path) -> None:
    text = tag_file("drawn", DRAWN, extra="  defualt false,\n")
    assert problems(tmp_path, {"loans/drawn.sql": text}) == [
        "loans/drawn.sql:10:3: unknown key 'defualt' in the TAG header (did you mean 'default'?)"]


def test_missing_header_shows_a_sample(tmp_path: Path) -> None:
    (message,) = problems(tmp_path, {"loans/drawn.sql": DRAWN})
    assert message.startswith("loans/drawn.sql:1:1: expected a TAG header, found 'SELECT'; "
                              "a TAG file starts with a header, for example:\nTAG (\n")


def test_unknown_placeholder_and_foreign_tables(tmp_path: Path) -> None:
    placeholder = DRAWN.replace("WHERE disbursed_at < $as_of_end", "WHERE disbursed_at < $asof")
    foreign = DRAWN.replace("raw.loans", "tags.customer_tags")
    assert problems(tmp_path, {
        "loans/drawn.sql": tag_file("drawn", placeholder),
        "loans/drawn2.sql": tag_file("drawn2", foreign.replace("AS drawn", "AS drawn2")),
    }) == [
        "loans/drawn.sql:13:22: unknown placeholder '$asof' (use $as_of or $as_of_end) "
        "(did you mean 'as_of'?)",
        "loans/drawn2.sql:12:6: tag queries read raw.<table> only, not 'tags.customer_tags'",
    ]


def test_name_file_and_folder_must_agree(tmp_path: Path) -> None:
    assert problems(tmp_path, {
        "loans/drawn_flag.sql": tag_file("drawn", DRAWN),
        "credit/drawn.sql": tag_file("drawn", DRAWN),
    }) == [
        "credit/drawn.sql:7:15: category_l1 'loans' does not match the folder 'credit'",
        "loans/drawn_flag.sql:3:8: tag 'drawn' must live in a file named drawn.sql, "
        "not drawn_flag.sql",
    ]


def test_all_problems_are_collected(tmp_path: Path) -> None:
    found = problems(tmp_path, {
        "loans/drawn.sql": tag_file("drawn", DRAWN, owner="'growth'"),
        "loans/x.sql": tag_file("x", "SELECT FROM WHERE"),
        "mkt/y.sql": tag_file("y", "drawn AND nope", l1="mkt"),
    })
    # 'drawn' is broken, so only 'nope' is reported as unknown in y.sql
    assert found == [
        "loans/drawn.sql:6:9: owner 'growth' is not a team: write 'team:<department>' with a "
        "snake_case department",
        "loans/x.sql:11:13: SQL does not parse: Expected table name but got 'WHERE'",
        "mkt/y.sql:11:11: unknown tag 'nope' in the expression of 'y'",
    ]


SQL_BITS = st.sampled_from([
    "SELECT", "customer_id", ",", "count(*)", "AS", "drawn", "FROM", "raw.loans", "WHERE",
    "$as_of", "$as_of_end", "<", "GROUP BY", "(", ")", "'x'", "1", "AND", "NOT", "*", "JOIN",
    "ON", "UNION", "WITH", "t", "l.customer_id", "CASE", "WHEN", "THEN", "END", ";", "--",
    "tags.customer_tags", "IN", "OVER", "||", "\n", "BETWEEN", "IS NULL", "+", "/", "-",
    "coalesce(", "x.y", "TRUE", "DATE '2024-01-01'", "drawn", "upper(", "$asof", "1.5"])


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(SQL_BITS, max_size=25), st.sampled_from(["boolean", "integer", "bool"]))
def test_any_body_loads_or_fails_with_located_errors(tmp_path: Path, bits: list[str],
                                                     vtype: str) -> None:
    root = tmp_path / "fuzz"
    (root / "loans").mkdir(parents=True, exist_ok=True)
    (root / "loans" / "drawn.sql").write_text(tag_file("drawn", " ".join(bits), vtype=vtype))
    try:
        load_tags(root)
    except KequnErrors as err:
        for error in err.errors:
            assert error.path == root / "loans" / "drawn.sql"
            assert error.line >= 1 and error.col >= 1
