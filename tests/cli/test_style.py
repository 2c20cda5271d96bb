"""One style for every command: each listing or record prints a rich table with a header
row, counts of 1,000 or more carry thousands separators, and no cell shows a Python repr
(``None``, ``True``, a dict or a tuple); every command and option has a one-line help.

The commands run through the real entry point on a generated warehouse (tags and segments
built for two days, ``tests.rules.conftest.built``) with a serving database filled by the
CLI itself: syncs, an approved campaign, issued and used coupons, a rule's orders.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from cli.main import app
from kequn.settings import REPO_ROOT
from serving.db import connect
from tests.cli.tables import Printed, tables
from tests.rules.conftest import DAY1, DAY2, built  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow

CAMPAIGN = "drawdown_rate_discount"
TERMS = (f"channel=APP,first_drawdown=false,principal=10000,annual_rate=0.18,term=12,"
         f"method=equal_installment,start={DAY2}")
IDS = {"customer", "coupon", "entry", "seq", "loan", "run", "version", "event", "row",
       "sample", "definition_hash", "file", "value", "written to", "no"}
"""Columns (or record fields) that hold identifiers, not counts: no separators there."""
VERBATIM = ("condition", "then", "else", "template", "description", "parameters", "range",
            "text")
"""Columns (or record fields) that quote a definition as written (SQL, a message template
with its ``{placeholders}``): shown as the user wrote them."""
REPR = re.compile(r"\bNone\b|\bTrue\b|\bFalse\b|[{}]|\('|\(\d+,")
BARE = re.compile(r"^-?\d{4,}(\.\d+)?$")
PLACEHOLDER = re.compile(r"<[a-z][\w ]*>|\{[a-z_]+\}")


@pytest.fixture(scope="module")
def kequn(built: Path, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
          ) -> Iterator[Callable[..., str]]:
    """Run ``kequn`` against a copy of the built warehouse and a serving database that the
    CLI fills: syncs of both days, an approved campaign, issued, occupied and confirmed
    coupons, a rule's orders."""
    data = tmp_path_factory.mktemp("cli-style")
    shutil.copyfile(built, data / "warehouse.duckdb")
    env = {"KEQUN_DATA_DIR": str(data), "KEQUN_WAREHOUSE": str(data / "warehouse.duckdb"),
           "KEQUN_SERVING_URL": f"sqlite:///{data / 'serving.sqlite'}",
           "KEQUN_PROJECT_DIR": str(REPO_ROOT / "sql"), "KEQUN_USER": "",
           "DAGSTER_HOME": str(data / "dagster_home")}
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, (args, result.output)
        return result.stdout

    for day in (DAY1, DAY2):
        for segment in ("vip_list", "wake_up", "borrowers"):
            run("--as", "ops.li", "sync", segment, "--as-of", day.isoformat(), "--force")
    run("--as", "demo.maker", "campaigns", "submit", CAMPAIGN)
    run("--as", "ops.li", "campaigns", "approve", CAMPAIGN, "activity")
    run("--as", "demo.maker", "campaigns", "launch", CAMPAIGN)
    with connect(env["KEQUN_SERVING_URL"]) as db:
        customers = [int(c) for (c,) in db.fetchall(
            "SELECT customer_id FROM coupon_eligibility WHERE segment = 'vip_list' "
            "ORDER BY customer_id LIMIT 3")]
    for customer in customers:
        run("coupons", "issue", CAMPAIGN, str(customer), "--key", f"issue-{customer}")
    with connect(env["KEQUN_SERVING_URL"]) as db:
        coupon = str(db.scalar("SELECT coupon_id FROM coupons WHERE customer_id = ?",
                               (customers[0],)))
    run("coupons", "occupy", coupon, "--loan", "L1", "--key", "o1", "--loan-context", TERMS)
    run("coupons", "confirm", coupon, "--loan", "L1", "--key", "c1")
    for day in (DAY1, DAY2):
        run("rules", "run", "wake_up_touch", "--as-of", day.isoformat())
    run.customer = customers[0]  # type: ignore[attr-defined]
    run.holder = customers[1]  # holds an unused coupon  # type: ignore[attr-defined]
    run.coupon = coupon  # type: ignore[attr-defined]
    run.env = env  # type: ignore[attr-defined]
    yield run


def listing_commands(customer: int, holder: int, coupon: str) -> list[tuple[str, ...]]:
    """Every command that prints a listing or a record, with arguments that find data."""
    day1, day2 = DAY1.isoformat(), DAY2.isoformat()
    return [
        ("tags", "list"), ("tags", "show", "drawn", "--as-of", day2),
        ("segments", "list"), ("segments", "history", "wake_up"),
        ("segments", "preview", "wake_up", "--as-of", day2),
        ("segments", "overlap", "wake_up", "borrowers", "--as-of", day2),
        ("segments", "explain", "wake_up", str(customer), "--as-of", day2),
        ("sync", "log"),
        ("campaigns", "list"), ("campaigns", "show", CAMPAIGN),
        ("campaigns", "counters", CAMPAIGN), ("campaigns", "plan", CAMPAIGN),
        ("campaigns", "ledger", CAMPAIGN), ("campaigns", "state", CAMPAIGN),
        ("coupons", "list", "--customer", str(customer)), ("coupons", "history", coupon),
        ("coupons", "usable", str(holder), "--loan-context", TERMS),
        ("rules", "list"), ("rules", "show", "wake_up_touch"),
        ("rules", "preview", "wake_up_touch", "--as-of", day2),
        ("rules", "orders", "wake_up_touch", "--as-of", day1),
        ("rules", "history", "wake_up_touch"),
        ("rules", "uplift", "wake_up_touch", "--from", day1, "--to", day1, "--horizon", "1"),
        ("touch", "outbox"), ("audit",), ("settings",),
        ("trial", "--principal", "120000", "--annual-rate", "0.18", "--term", "12",
         "--method", "equal_installment", "--start", day2, "--template", "amount_off=200"),
    ]


def problems(printed: Printed) -> list[str]:
    """Cells that show a Python repr, or a count of 1,000 or more without separators."""
    found = []
    record = printed.header == ["field", "value"]
    for cells in printed.rows:
        for at, text in enumerate(cells):
            column = cells[0] if record and at == 1 else (
                printed.header[at] if at < len(printed.header) else "")
            if column.startswith(VERBATIM):
                continue
            if REPR.search(text):
                found.append(f"{column}: repr {text!r}")
            if column not in IDS and any(BARE.match(token) for token in
                                         re.split(r"[\s,;()/]+", text)
                                         if not re.match(r"\d{4}-\d{2}-\d{2}", token)):
                found.append(f"{column}: no thousands separator in {text!r}")
    return found


def style_problems(out: str) -> list[str]:
    """What breaks the style in one command's output (nothing: an empty list)."""
    printed = tables(out)
    if not printed:
        return [f"no table with a header row in:\n{out}"]
    found = []
    for table in printed:
        if not (table.header and all(table.header)):
            found.append(f"an empty header in {table}")
        found += problems(table)
    return found


def check(out: str) -> list[Printed]:
    """The output's tables, each with a header row and no problem cell."""
    assert not style_problems(out), (style_problems(out), out)
    return tables(out)


def test_every_listing_command_prints_styled_tables(kequn) -> None:
    outputs, failed = {}, {}
    for args in listing_commands(kequn.customer, kequn.holder, kequn.coupon):
        out = kequn(*args)
        outputs[args[:2]] = tables(out)
        if style_problems(out):
            failed[" ".join(args)] = style_problems(out)
    assert not failed, failed
    # the checks have something to bite on: counts of 1,000 and more are there
    coverage = outputs[("tags", "list")][0].column("coverage")
    assert any(re.match(r"\d{1,3}(,\d{3})+ ", c) for c in coverage), coverage
    stock = outputs[("campaigns", "list")][0].column("stock")
    assert all("," in s for s in stock), stock
    fields = outputs[("campaigns", "show")][0].record()
    assert re.fullmatch(r"\d{1,3}(,\d{3})+", fields["total_stock"])
    plan = outputs[("trial", "--principal")][0]
    assert plan.rows[-1][1] == "120,000.00"  # money: two decimals, thousands separators
    assert outputs[("coupons", "list")][0].column("coupon") == [kequn.coupon]


def test_json_outputs_stay_machine_readable(kequn) -> None:
    plan = json.loads(kequn("campaigns", "plan", CAMPAIGN, "--json"))
    assert plan["campaign"] == CAMPAIGN and isinstance(plan["eligible"], int)
    usable = json.loads(kequn("coupons", "usable", str(kequn.holder), "--loan-context",
                              TERMS, "--json"))
    assert {"usable", "refused", "best", "best_reduction"} <= set(usable)
    for args in (("audit", "--json"), ("coupons", "list", "--customer", str(kequn.customer),
                                       "--json")):
        lines = kequn(*args).splitlines()
        assert lines and all(isinstance(json.loads(line), dict) for line in lines)


def test_the_demo_summary_is_styled(kequn) -> None:
    from app.context import KequnContext
    from cli.summary import print_summary
    from kequn.settings import Settings

    console = Console(width=200, record=True, force_terminal=False)
    print_summary(KequnContext(Settings.from_env(kequn.env)), DAY2, console)
    printed = check(console.export_text())
    titles = [t.title for t in printed]
    assert titles[:2] == [f"Tags (business day {DAY2})", f"Segments (business day {DAY2})"]
    assert "Syncs to coupon_eligibility" in titles and "Coupons" in titles


def commands(command: click.Command, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under ``command``, with its path."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))


def test_every_command_and_option_has_a_one_line_help() -> None:
    missing = []
    runner = CliRunner()
    for path, command in commands(typer.main.get_command(app)):
        if not (command.help or "").strip():
            missing.append(" ".join(path) or "kequn")
        for param in command.params:
            text = getattr(param, "help", None) or ""
            if param.name != "help" and (not text.strip() or "\n" in text):
                missing.append(f"{' '.join(path)} {param.name}")
        shown = runner.invoke(app, [*path, "--help"])
        assert shown.exit_code == 0, (path, shown.output)
        # plain placeholders: SEGMENT, --as-of YYYY-MM-DD, --limit N; never Typer's
        # {segment}, --dry-run <bool> or --as-of <str>
        assert not PLACEHOLDER.search(shown.output), (path, shown.output)
    assert not missing, missing
