"""``kequn generate`` through the real root app."""

from __future__ import annotations

from pathlib import Path

import duckdb
from typer.testing import CliRunner

from cli.main import app
from generate import phone_hash_for

runner = CliRunner()


def test_generate_writes_the_warehouse_and_prints_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    result = runner.invoke(
        app,
        ["--warehouse", str(path), "generate", "--customers", "2500", "--seed", "4",
         "--end-date", "2025-03-31", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert "raw.customers" in result.output and "2,500" in result.output
    assert "2025-03-31" in result.output
    con = duckdb.connect(str(path), read_only=True)
    try:
        count, last = con.execute(
            "SELECT count(*), max(registered_at) FROM raw.customers"
        ).fetchone()
        stored = con.execute(
            "SELECT phone_hash FROM raw.customers WHERE customer_id = 7"
        ).fetchone()
    finally:
        con.close()
    assert count == 2500
    assert last.date().isoformat() <= "2025-03-31"
    assert stored[0] == phone_hash_for(7, 4)


def test_generate_uses_the_warehouse_from_the_environment(isolated_data: Path) -> None:
    result = runner.invoke(app, ["generate", "-n", "300", "-s", "1", "--end-date", "2025-01-31"])
    assert result.exit_code == 0, result.output
    assert (isolated_data / "warehouse.duckdb").exists()


def test_zero_customers_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--warehouse", str(tmp_path / "w.duckdb"), "generate",
                                 "--customers", "0"])
    assert result.exit_code == 2
    assert "--customers" in result.output and "1" in result.output
    assert not (tmp_path / "w.duckdb").exists()


def test_a_bad_end_date_is_a_usage_error_naming_the_value(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--warehouse", str(tmp_path / "w.duckdb"), "generate",
                                 "--end-date", "2025-02-30"])
    assert result.exit_code == 2
    assert "2025-02-30" in result.output and "--end-date" in result.output


def test_help_describes_the_command() -> None:
    result = runner.invoke(app, ["generate", "--help"])
    assert result.exit_code == 0
    assert "--customers" in result.output and "--seed" in result.output
