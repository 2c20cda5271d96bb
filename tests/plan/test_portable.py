"""The portable-subset lint: each trap found at file:line:col with its portable spelling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot

from kequn.settings import REPO_ROOT
from plan.portable import findings, portable_problems
from project.loader import load_project

KEQUN = [sys.executable, "-c", "from cli.main import main; main()"]
HEADER = ("TAG (\n  name {name},\n  title 'T',\n  description 'D.',\n  owner 'team:growth',\n"
          "  category_l1 profile,\n  category_l2 misc,\n  value_type {type},\n);\n")


def _first(sql: str) -> str:
    found = findings(sqlglot.parse_one(sql, read="duckdb"))
    assert found, sql
    return found[0][1]


@pytest.mark.parametrize(("sql", "start"), [
    ("SELECT date_diff('month', a, b)", "date_diff('month', ...) counts month boundaries"),
    ("SELECT date_diff('year', a, b)", "date_diff('year', ...) counts year boundaries"),
    ("SELECT dayofweek(d)", "day-of-week numbering differs"),
    ("SELECT isodow(d)", "day-of-week numbering differs"),
    ("SELECT extract(dow FROM d)", "day-of-week numbering differs"),
    ("SELECT list(x ORDER BY y)", "list()/array_agg() is not portable"),
    ("SELECT len(list(x))", "len(list) fails on Spark"),
    ("SELECT list_has_any(a, b)", "list function"),
    ("SELECT quantile_cont(x, 0.5)", "quantile_cont/percentile fail on Spark"),
    ("SELECT first(x ORDER BY y)", "first(x ORDER BY y) fails on Spark"),
    ("SELECT d - INTERVAL 3 DAY", "DATE ± INTERVAL is a TIMESTAMP on DuckDB"),
    ("SELECT a / b", "division by zero is inf on DuckDB but an error on Spark"),
    ("SELECT a // b", "// is not portable"),
    ("SELECT list_aggregate(x, 'sum')", "function list_aggregate() is not in the portable"),
])
def test_each_trap_is_reported_with_the_portable_spelling(sql: str, start: str) -> None:
    assert _first(sql).startswith(start)


@pytest.mark.parametrize("sql", [
    "SELECT date_diff('day', a, b)",
    "SELECT CAST(d - INTERVAL 3 DAY AS DATE)",
    "SELECT a / NULLIF(b, 0)",
    "SELECT a / 100",
    "SELECT CASE WHEN b > 0 THEN a / b END",
    "SELECT CASE WHEN b <> 0 THEN a / b ELSE 0 END",
    "SELECT bool_or(x), count(*) FILTER (WHERE y), arg_max(a, b), median(c)",
])
def test_portable_spellings_pass(sql: str) -> None:
    assert findings(sqlglot.parse_one(sql, read="duckdb")) == []


def test_an_unguarded_branch_is_still_reported() -> None:
    assert _first("SELECT CASE WHEN c > 0 THEN a / b END").startswith("division by zero")


def test_every_shipped_definition_is_portable() -> None:
    assert [p.render() for p in portable_problems(load_project(REPO_ROOT / "sql"))] == []


def _project(tmp_path: Path) -> Path:
    tags = tmp_path / "sql" / "tags" / "profile"
    tags.mkdir(parents=True)
    (tags / "weekday_registered.sql").write_text(
        HEADER.format(name="weekday_registered", type="integer")
        + "SELECT customer_id, isodow(registered_at) AS weekday_registered\n"
        "FROM raw.customers\nWHERE registered_at < $as_of_end\n")
    (tags / "share.sql").write_text(
        HEADER.format(name="share", type="decimal") + "SELECT customer_id,\n"
        "  sum(principal) / count(*) AS share\nFROM raw.loans\n"
        "WHERE disbursed_at >= $as_of - INTERVAL 7 DAY\nGROUP BY customer_id\n")
    segments = tmp_path / "sql" / "segments"
    segments.mkdir()
    (segments / "ratio.sql").write_text(
        "SEGMENT (\n  name ratio,\n  kind rule,\n  owner 'team:growth',\n"
        "  rule 'weekday_registered / share > 1',\n);\n")
    return tmp_path / "sql"


def test_problems_are_located_at_file_line_col(tmp_path: Path) -> None:
    root = _project(tmp_path)
    project = load_project(root)
    assert project.problems() == []
    heads = [p.headline().split(": not portable to Spark: ") for p in portable_problems(project)]
    where = [(h[0].replace(str(root) + "/", ""), h[1].split(":")[0]) for h in heads]
    assert where == [
        ("tags/profile/share.sql:11:3", "division by zero is inf on DuckDB but an error on Spark"),
        ("tags/profile/share.sql:13:23", "DATE ± INTERVAL is a TIMESTAMP on DuckDB but a DATE on "
         "Spark"),
        ("tags/profile/weekday_registered.sql:10:21", "day-of-week numbering differs between "
         "DuckDB and Spark"),
        ("segments/ratio.sql:5:9", "division by zero is inf on DuckDB but an error on Spark"),
    ]


def test_validate_portable_exits_1_and_plain_validate_passes(tmp_path: Path) -> None:
    root = _project(tmp_path)
    cmd = [*KEQUN, "--project", str(root), "validate"]
    plain = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert plain.returncode == 0, plain.stderr
    done = subprocess.run([*cmd, "--portable"], capture_output=True, text=True, cwd=REPO_ROOT,
                          check=False)
    assert done.returncode == 1
    assert f"{root}/tags/profile/weekday_registered.sql:10:21: not portable to Spark" in done.stderr
    assert "CAST(d - INTERVAL n DAY AS DATE)" in done.stderr


def test_validate_portable_passes_on_the_shipped_project() -> None:
    done = subprocess.run([*KEQUN, "validate", "--portable"],
                          capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert "portable to Spark" in done.stdout
