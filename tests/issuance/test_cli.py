"""``kequn campaigns ...`` and ``kequn coupons ...`` through the real command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from serving.db import connect
from tests.approvals import PROJECT
from tests.cli.tables import table
from tests.issuance.conftest import make_eligible

CAMPAIGN = """\
name: spring
type: credit
target_segment: granted
window_start: 2020-01-01
window_end: 2035-12-31
interest_free_days: 7
validity_starts_after_days: 0
validity_days: 10
total_stock: 2
stacking: stackable
on_failed_drawdown: restore
"""
ROLES = PROJECT / "roles.yaml"
SEGMENT = """\
SEGMENT (name granted, kind sql, owner 'team:growth', sync on);
SELECT customer_id FROM raw.customers
"""


@pytest.fixture
def project(tmp_path: Path, isolated_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "campaigns").mkdir(parents=True)
    (root / "campaigns" / "spring.yaml").write_text(CAMPAIGN)
    (root / "segments").mkdir()
    (root / "segments" / "granted.sql").write_text(SEGMENT)
    monkeypatch.setenv("KEQUN_PROJECT_DIR", str(root))
    url = f"sqlite:///{isolated_data / 'serving.sqlite'}"
    with connect(url) as db:
        make_eligible(db, "granted", [1, 2, 3])
    return root


def kequn(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_campaign_commands(project: Path) -> None:
    code, out, _ = kequn("campaigns", "validate")
    assert (code, out.strip()) == (0, "1 campaign(s) OK")
    code, out, _ = kequn("campaigns", "list")
    assert code == 0 and "spring" in out and "7 interest-free days" in out
    code, out, _ = kequn("campaigns", "show", "spring")
    assert code == 0 and table(out).record()["target_segment"] == "granted"
    code, _, err = kequn("campaigns", "show", "sprng")
    assert code == 1
    assert f"{project / 'campaigns'}: unknown campaign 'sprng' (did you mean 'spring'?)" in err


def test_validate_reports_file_line_col(project: Path) -> None:
    bad = project / "campaigns" / "bad.yaml"
    bad.write_text(CAMPAIGN.replace("name: spring", "name: autumn").replace(
        "total_stock: 2", "total_stock: -1"))
    code, _, err = kequn("campaigns", "validate")
    assert code == 1
    assert f"{bad}:9:14: 'total_stock' must be at least 1, not -1" in err


def test_coupon_life_cycle(project: Path) -> None:
    code, _, err = kequn("coupons", "issue", "spring", "1", "--key", "i1")
    assert code == 1 and "issue refused (not_live)" in err
    shutil.copy(ROLES, project / "roles.yaml")
    assert kequn("--as", "ops.li", "campaigns", "submit", "spring")[0] == 0
    assert kequn("--as", "ops.zhou", "campaigns", "approve", "spring", "activity")[0] == 0
    code, out, _ = kequn("--as", "ops.li", "campaigns", "launch", "spring")
    assert (code, out.strip()) == (0, "spring: live submitted by ops.li; approved: activity "
                                      "by ops.zhou")
    code, out, _ = kequn("coupons", "issue", "spring", "1", "--key", "i1")
    assert code == 0 and out.startswith("issue: coupon ")
    coupon = out.split()[2]
    code, out, _ = kequn("coupons", "issue", "spring", "1", "--key", "i1")
    assert code == 0 and out.split()[2] == coupon and "[replayed]" in out
    code, _, err = kequn("coupons", "issue", "spring", "9", "--key", "i9")
    assert code == 1 and "issue refused (not_eligible)" in err
    code, _, err = kequn("coupons", "issue", "spring", "2", "--key", "i1")
    assert code == 1 and "idempotency key 'i1' was already used" in err
    code, out, _ = kequn("coupons", "occupy", coupon, "--loan", "L1", "--lease-seconds", "60",
                         "--key", "o1")
    assert code == 0 and "(occupied)" in out
    code, _, err = kequn("coupons", "confirm", coupon, "--loan", "L2", "--key", "c2")
    assert code == 1 and "(wrong_loan)" in err
    code, out, _ = kequn("coupons", "reverse", coupon, "--loan", "L1", "--key", "r1")
    assert code == 0 and "(unused)" in out  # restore policy
    code, _, err = kequn("coupons", "occupy", coupon, "--loan", "L1", "--key", "o2")
    assert code == 1 and "(loan_reversed)" in err
    code, out, _ = kequn("coupons", "list", "--customer", "1")
    assert code == 0 and [r[:3] for r in table(out).rows] == [[coupon, "spring", "unused"]]
    code, out, _ = kequn("coupons", "list", "--customer", "1", "--json")
    assert code == 0 and '"status": "unused"' in out
    code, out, _ = kequn("coupons", "history", coupon)
    assert code == 0 and [r[2:4] for r in table(out).rows] == [
        ["-", "unused"], ["unused", "occupied"], ["occupied", "unused"]]
    code, out, _ = kequn("coupons", "expire")
    assert (code, out.strip()) == (0, "released 0 lease(s), expired 0 coupon(s)")
    assert kequn("coupons", "issue", "spring", "2", "--key", "i2")[0] == 0
    code, _, err = kequn("coupons", "issue", "spring", "3", "--key", "i3")
    assert code == 1 and "stock_exhausted" in err
    code, out, _ = kequn("campaigns", "counters", "spring")
    assert code == 0 and table(out).record()["issued"] == "2 / 2 (remaining 0)"


def test_usage_errors_exit_2(project: Path) -> None:
    assert kequn("coupons", "issue", "spring", "1")[0] == 2  # no --key
    assert kequn("coupons", "occupy", "x", "--loan", "L", "--key", "k",
                 "--lease-seconds", "0")[0] == 2
