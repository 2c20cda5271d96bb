"""``kequn trial`` through the real command line: table, JSON, issued coupons, bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from tests.cli.tables import table

LOAN = ("trial", "--principal", "12000", "--annual-rate", "0.12", "--term", "12",
        "--method", "equal_principal", "--start", "2026-01-31")


def kequn(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_plain_and_with_a_template(isolated_data: Path) -> None:
    code, out, _ = kequn(*LOAN)
    assert code == 0
    plan = table(out)
    assert plan.header == ["no", "due", "days", "principal", "interest", "reduction", "payable"]
    assert plan.rows[0] == ["1", "2026-02-28", "28", "1,000.00", "120.00", "0.00", "1,120.00"]
    assert plan.rows[-1] == ["total", "12,000.00", "780.00", "0.00", "12,780.00"]
    code, out, _ = kequn(*LOAN, "--template", "interest_free_days=30", "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["totals"] == {"principal": "12000.00", "interest": "780.00",
                              "reduction": "127.10", "payable": "12652.90"}
    assert plan["periods"][1] == {"no": 2, "due": "2026-03-31", "days": 31,
                                  "principal": "1000.00", "interest": "110.00",
                                  "reduction": "7.10", "payable": "1102.90"}


def test_stacked_templates_and_errors(isolated_data: Path) -> None:
    code, out, _ = kequn(*LOAN, "--template", "rate_discount=0.8:1", "--template",
                         "amount_off=100", "--json")
    assert code == 0
    # Period 1 interest 120: 20% = 24.00 off, then 96.00 of the 100 off; period 2: 4.00.
    assert [p["reduction"] for p in json.loads(out)["periods"][:3]] == ["120.00", "4.00", "0.00"]
    code, _, err = kequn(*LOAN, "--template", "cashback=3")
    assert code == 1 and "coupon type must be one of" in err
    code, _, err = kequn(*LOAN, "--template", "amount_off")
    assert code == 2 and "KIND=VALUE" in err
    code, _, err = kequn(*LOAN[:-1], "2026-02-30")
    assert code == 2
    code, _, err = kequn(*LOAN, "--coupon", "nope")
    assert code == 1 and "no coupon 'nope'" in err
