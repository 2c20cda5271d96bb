"""``kequn segments ...`` through the real command line (CliRunner)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from generate.phones import phone_for
from kequn.settings import REPO_ROOT
from project.loader import read_definition as read_segment
from tests.cli.tables import table
from tests.segments.conftest import GEN_SEED, write

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(built_copy: Callable[[], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run kequn against a private copy of the built warehouse and of sql/segments."""
    warehouse = built_copy()
    project = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "sql" / "segments", project / "segments")
    (project / "tags").symlink_to(REPO_ROOT / "sql" / "tags")
    monkeypatch.setenv("KEQUN_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("KEQUN_PROJECT_DIR", str(project))
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, ["segments", *args], catch_exceptions=False)

    run.warehouse = warehouse  # type: ignore[attr-defined]
    run.project = project  # type: ignore[attr-defined]
    return run


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_validate_ok_and_every_problem_located(cli) -> None:
    result = cli("validate")
    count = len(list((cli.project / "segments").glob("*.sql")))
    assert result.exit_code == 0 and f"{count} segment(s) OK" in result.output
    bad = write(cli.project / "segments" / "bad.sql", "SEGMENT (\n  name bad,\n  kind rule,\n"
                "  owner 'team:a',\n  rule 'granted_not_drawm AND overdue_days',\n);\n")
    evil = write(cli.project / "segments" / "evil.sql", "SEGMENT (name evil, kind sql, "
                 "owner 'team:a');\nSELECT customer_id FROM raw.customers; DROP TABLE raw.loans\n")
    result = cli("validate")
    assert result.exit_code == 1
    err = result.stderr if result.stderr else result.output
    assert (f"{bad}:5:9: unknown tag 'granted_not_drawm' (did you mean 'granted_not_drawn'?)"
            in err)
    assert f"{evil}:2:40: exactly one statement is allowed" in err
    only = cli("validate", str(bad))
    assert only.exit_code == 1 and "evil.sql" not in (only.stderr or only.output)


def test_preview_writes_nothing(cli) -> None:
    before = digest(cli.warehouse)
    for name in ("wake_up", "repeat_big_borrowers", "vip_list", "wake_up_campaign"):
        result = cli("preview", name, "--as-of", "2025-06-30")
        assert result.exit_code == 0, result.output
        assert "size" in table(result.output).record() and "compiled SQL:" in result.output
    draft = write(cli.project.parent / "draft.sql", "SEGMENT (name draft, kind rule, "
                  "owner 'team:a', rule 'overdue');\n")
    result = cli("preview", str(draft), "--as-of", "2025-06-30")
    assert result.exit_code == 0
    assert table(result.output).record()["segment"] == "draft (rule)"
    assert digest(cli.warehouse) == before


def test_compile_dialects(cli) -> None:
    spark = cli("compile", "wake_up", "--dialect", "spark")
    assert spark.exit_code == 0 and "`granted_not_drawn`" in spark.output
    assert ":as_of" in spark.output
    trino = cli("compile", "wake_up_campaign", "--dialect", "trino")
    assert "EXCEPT" in trino.output and "UNION" in trino.output
    bad = cli("compile", "wake_up", "--dialect", "oracle")
    assert bad.exit_code == 1 and "unknown dialect 'oracle'" in (bad.stderr or bad.output)


def test_overlap_matrix(cli) -> None:
    result = cli("overlap", "wake_up", "vip_list", "wake_up_campaign", "--as-of", "2025-06-30")
    assert result.exit_code == 0
    matrix = table(result.output)
    assert matrix.title == "overlap on business day 2025-06-30 (diagonal: sizes)"
    assert matrix.header == ["segment", "wake_up", "vip_list", "wake_up_campaign"]
    row = matrix.rows[0]
    assert row[0] == "wake_up" and row[1] == row[3]  # wake_up is inside the campaign


def test_explain_rule_shows_each_condition(cli) -> None:
    result = cli("explain", "wake_up", "5", "--as-of", "2025-06-30")
    assert result.exit_code == 0
    assert "NOT overdue" in result.output and "registered_days >= 30" in result.output
    assert "customer 5 is" in result.output


def test_import_creates_segment_and_reports(cli, tmp_path: Path) -> None:
    upload = tmp_path / "promo.csv"
    upload.write_text("手机号\n" + "\n".join(phone_for(c, GEN_SEED) for c in (1, 2, 3))
                      + "\nnot-a-phone\n", encoding="gbk")
    result = cli("import", str(upload), "--name", "promo", "--match", "phone")
    assert result.exit_code == 0, result.output
    assert "3 matched, 0 unmatched, 0 duplicate, 1 rejected" in result.output
    assert ["5", "rejected"] in [r[:2] for r in table(result.output).rows]
    assert read_segment(cli.project / "segments" / "promo.sql").kind == "file"
    again = cli("import", str(upload), "--name", "promo", "--match", "phone")
    assert "unchanged" in again.output
    assert phone_for(1, GEN_SEED) not in result.output


def _listed(output: str) -> list[str]:
    """The segment names of `segments list` (the first column, below the header)."""
    return table(output).column("segment")


def test_share_list_and_favorites(cli) -> None:
    path = cli.project / "segments" / "overdue_now.sql"
    result = cli("share", "overdue_now", "team:growth")
    assert result.exit_code == 0
    assert read_segment(path).shared_with == ("team:ops", "team:growth")
    assert "team:growth" in cli("list", "--shared-with", "team:growth").output.split(
        "overdue_now")[1].splitlines()[0]
    cli("share", "overdue_now", "team:ops", "--remove")
    assert read_segment(path).shared_with == ("team:growth",)
    assert _listed(cli("list", "--owner", "team:risk").output)[0] == "overdue_now"
    assert cli("favorite", "wake_up", "--user", "li.lei").exit_code == 0
    assert "(no change)" in cli("favorite", "wake_up", "--user", "li.lei").output
    assert _listed(cli("list", "--favorites", "li.lei").output) == ["wake_up"]
    cli("favorite", "wake_up", "--user", "li.lei", "--remove")
    assert cli("list", "--favorites", "li.lei").output.strip() == ""
    unknown = cli("favorite", "wake_upp", "--user", "x")
    assert unknown.exit_code == 1
    assert "did you mean 'wake_up'?" in (unknown.stderr or unknown.output)


def test_validate_and_preview_check_names_against_the_warehouse(cli) -> None:
    """Unknown tables and columns are caught before running, at the name, with a hint."""
    table = write(cli.project / "segments" / "typo_table.sql",
                  "SEGMENT (name typo_table, kind sql, owner 'team:a');\n"
                  "SELECT customer_id\nFROM raw.loan\n")
    column = write(cli.project / "segments" / "typo_column.sql",
                   "SEGMENT (name typo_column, kind sql, owner 'team:a');\n"
                   "SELECT customer_id FROM raw.loans\nWHERE stauts = 'SETTLED'\n")
    result = cli("validate")
    err = result.stderr or result.output
    assert result.exit_code == 1
    assert (f"{table}:3:6: table 'raw.loan' does not exist in the warehouse "
            "(did you mean 'loans'?)") in err
    assert (f"{column}:3:7: column 'stauts' does not exist in the tables the query reads "
            "(did you mean 'status'?)") in err
    assert "Traceback" not in err
    preview = cli("preview", "typo_column", "--as-of", "2025-06-30")
    err = preview.stderr or preview.output
    assert preview.exit_code == 1
    assert f"{column}:3:7: column 'stauts' does not exist" in err


def test_import_refusals_replace_nothing(cli, tmp_path: Path) -> None:
    """Matching nothing, or under another match mode than the segment's: refused, exit 1,
    the previous list kept."""
    good = tmp_path / "good.csv"
    good.write_text("手机号\n" + "\n".join(phone_for(c, GEN_SEED) for c in (1, 2)) + "\n",
                    encoding="utf-8")
    assert cli("import", str(good), "--name", "promo", "--match", "phone").exit_code == 0
    definition = cli.project / "segments" / "promo.sql"
    before = definition.read_bytes()
    for body, args, message in [
        ("\n\n\n", ["--match", "phone"], "no data rows"),
        ("phone\nnope\nnada\n", ["--match", "phone"], "no row of 'phone' is a valid phone"),
        ("phone\n13999999990\n", [], "nothing matched"),
        ("1\n2\n", ["--match", "id"], "segment 'promo' matches by phone, not id: re-import "
         "with --match phone"),
    ]:
        upload = tmp_path / "next.csv"
        upload.write_text(body, encoding="utf-8")
        result = cli("import", str(upload), "--name", "promo", *args)
        err = result.stderr or result.output
        assert result.exit_code == 1, (body, result.output)
        assert message in err and "Traceback" not in err
        assert "imported" not in result.stdout
    assert definition.read_bytes() == before
    assert table(cli("preview", "promo", "--as-of", "2025-06-30").output).record()["size"] \
        == "2"


def test_import_with_the_warehouse_locked_leaves_nothing_behind(cli, tmp_path: Path,
                                                               monkeypatch) -> None:
    import subprocess
    import sys

    upload = tmp_path / "new.csv"
    upload.write_text("1\n2\n", encoding="utf-8")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(60)", str(cli.warehouse)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setenv("KEQUN_WAREHOUSE_WAIT_S", "0.5")
        result = cli("import", str(upload), "--name", "fresh_list", "--match", "id")
    finally:
        holder.kill()
        holder.wait()
    err = result.stderr or result.output
    assert result.exit_code == 1
    assert "cannot open the warehouse for writing" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3
    assert not (cli.project / "segments" / "fresh_list.sql").exists()


def test_preview_names_the_tag_missing_for_the_day(cli) -> None:
    """A rule on tags not built for the day says which tag, which day and the command."""
    import duckdb

    con = duckdb.connect(str(cli.warehouse))
    con.execute("DELETE FROM tags.catalog WHERE as_of = DATE '2025-06-30' AND name = 'overdue'")
    con.close()
    result = cli("preview", "overdue_now", "--as-of", "2025-06-30")
    err = result.stderr or result.output
    assert result.exit_code == 1
    assert ("tag 'overdue' not built for 2025-06-30: run kequn materialize --as-of 2025-06-30 "
            "--select 'key:tags/*'") in err
    assert "Traceback" not in err
    before = cli("preview", "overdue_now", "--as-of", "2025-06-01")
    assert before.exit_code == 1
    assert "has no rows for 2025-06-01; build the tags for that day first: kequn materialize " \
        "--as-of 2025-06-01" in (before.stderr or before.output)


def test_preview_of_sql_on_an_unbuilt_tag_column(cli) -> None:
    import duckdb

    con = duckdb.connect(str(cli.warehouse))
    con.execute("ALTER TABLE tags.customer_tags DROP COLUMN overdue")
    con.close()
    draft = write(cli.project / "segments" / "late.sql",
                  "SEGMENT (name late, kind sql, owner 'team:a');\nSELECT customer_id FROM "
                  "tags.customer_tags\nWHERE as_of = $as_of AND overdue\n")
    assert cli("validate", str(draft)).exit_code == 0  # a defined tag: it will exist
    result = cli("preview", "late", "--as-of", "2025-06-30")
    err = result.stderr or result.output
    assert result.exit_code == 1 and "Traceback" not in err
    assert (f"{draft}:3:26: tag 'overdue' is defined but not built yet: run kequn materialize "
            "--as-of 2025-06-30 --select 'key:tags/*'") in err
