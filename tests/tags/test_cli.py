"""``kequn tags validate|list|show`` through the real command line app."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from kequn.settings import REPO_ROOT
from plan.tags import TagPlan
from tags.build import build_day
from tests.cli.tables import table
from warehouse.db import connect

runner = CliRunner()


def test_validate_ok() -> None:
    result = runner.invoke(app, ["tags", "validate"])
    assert result.exit_code == 0, result.output
    assert "tags OK" in result.stdout and "atomic" in result.stdout


def test_validate_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    folder = tmp_path / "tags" / "loans"
    folder.mkdir(parents=True)
    (folder / "a.sql").write_text("TAG (name a, title 't', description 'd', owner 'growth', "
                                  "category_l1 loans, category_l2 x, value_type boolean);\n"
                                  "SELECT customer_id, TRUE AS a FROM raw.loans\n")
    (folder / "b.sql").write_text("TAG (name b, title 't', description 'd', owner 'team:g', "
                                  "category_l1 loans, category_l2 x, value_type integer);\n"
                                  "a AND zz\n")
    result = runner.invoke(app, ["tags", "validate", str(tmp_path / "tags")])
    assert result.exit_code == 1
    assert f"{folder}/a.sql:1:48: owner 'growth' is not a team" in result.stderr
    assert f"{folder}/b.sql:2:7: unknown tag 'zz' in the expression of 'b'" in result.stderr
    assert "2 problems found." in result.stderr


def test_list_filters_and_shows_coverage(tiny_path: Path, plan: TagPlan) -> None:
    con = connect(tiny_path)
    build_day(con, plan, date(2025, 3, 11))
    con.close()
    result = runner.invoke(app, ["--warehouse", str(tiny_path), "tags", "list",
                                 "--category", "loans/drawdown", "--owner", "credit_risk"])
    assert result.exit_code == 0, result.output
    listed = table(result.stdout)
    assert listed.column("name") == ["drawn", "loan_count"]
    assert listed.column("coverage")[0] == "3 (75.0%)"
    assert listed.title == "tags (coverage as of business day 2025-03-11)"


def test_list_without_a_warehouse(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--warehouse", str(tmp_path / "none.duckdb"), "tags", "list",
                                 "--category", "repayment"])
    assert result.exit_code == 0
    assert "not built yet" in result.stdout and "overdue_days" in result.stdout


def test_show_prints_the_compiled_sql() -> None:
    result = runner.invoke(app, ["tags", "show", "overdue", "--as-of", "2025-03-11"])
    assert result.exit_code == 0, result.output
    fields = table(result.stdout).record()
    assert fields["owner"] == "team:collections" and fields["used by"] == "risk_level"
    assert "i.due_date < $as_of" in result.stdout  # the day is a bound parameter
    assert "$as_of = 2025-03-11, $as_of_end = 2025-03-12 00:00:00" in result.stdout
    assert "tags.customer_tags, column" in result.stdout
    derived = runner.invoke(app, ["tags", "show", "granted_not_drawn"])
    assert table(derived.stdout).record()["depends on"] == "credit_granted, drawn"


def test_show_unknown_tag_suggests_a_name() -> None:
    result = runner.invoke(app, ["tags", "show", "overdue_day"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"{REPO_ROOT / 'sql' / 'tags'}: unknown tag 'overdue_day' "
                                     "(did you mean 'overdue_days'?)")


def test_bad_date_is_a_usage_error() -> None:
    assert runner.invoke(app, ["tags", "list", "--as-of", "yesterday"]).exit_code == 2
