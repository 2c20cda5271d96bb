"""The end-of-demo summary: tags with coverage, segments, syncs, coupons and rule orders."""

from __future__ import annotations

from datetime import date

from rich.console import Console
from rich.table import Table

from app.context import KequnContext
from issuance.service import Issuer
from serving.db import ServingDB
from warehouse.db import table_exists


def print_summary(kequn: KequnContext, as_of: date, console: Console) -> None:
    """Print what the pipeline produced for ``as_of``; sections appear as areas exist, and
    broken definitions (if any) come first, with why."""
    broken = kequn.project.broken
    if broken:
        table = Table("kind", "name", "file", "why", title="Broken definitions (not built)")
        for item in broken.values():
            table.add_row(item.kind, item.name, str(item.path), item.reason)
        console.print(table)
    with kequn.connect_warehouse(read_only=True) as con:
        if table_exists(con, "tags", "catalog"):
            table = Table("tag", "category", "owner", "kind", "type", "coverage", "ratio",
                          title="Tags")
            for row in con.execute(
                "SELECT name, category_l1 || '/' || category_l2, owner, kind, value_type, "
                "coverage, coverage_ratio FROM tags.catalog WHERE as_of = ? "
                "ORDER BY category_l1, category_l2, name",
                [as_of],
            ).fetchall():
                table.add_row(*map(str, row[:5]), f"{row[5]:,}", f"{row[6]:.1%}")
            console.print(table)
        if table_exists(con, "segments", "members"):
            table = Table("segment", "members", title="Segments")
            for name, size in con.execute(  # history: every built segment, either engine
                "SELECT segment, size FROM segments.history WHERE as_of = $d UNION ALL "
                "SELECT segment, count(*) FROM segments.members WHERE as_of = $d AND segment "
                "NOT IN (SELECT segment FROM segments.history WHERE as_of = $d) "
                "GROUP BY segment ORDER BY segment",
                {"d": as_of},
            ).fetchall():
                table.add_row(name, f"{size:,}")
            console.print(table)
    _print_serving(kequn, console)


def _print_serving(kequn: KequnContext, console: Console) -> None:
    db = kequn.connect_serving()
    try:
        rows = db.fetchall(
            "SELECT segment, as_of, status, added, removed, unchanged, reason FROM sync_log "
            "ORDER BY started_at, segment"
        )
        if rows:
            table = Table("segment", "as of", "status", "added", "removed", "unchanged",
                          "reason", title="Syncs to coupon_eligibility")
            for row in rows:
                table.add_row(*[str(v) if v is not None else "" for v in row])
            console.print(table)
        _print_coupons(kequn, db, console)
        _print_rules(kequn, db, console)
    finally:
        db.close()


def _print_coupons(kequn: KequnContext, db: ServingDB, console: Console) -> None:
    campaigns = kequn.project.campaigns
    if not campaigns:
        return
    issuer = Issuer(db, campaigns)
    table = Table("campaign", "target segment", "stock", "issued", "remaining",
                  "issued this business day", "by state", title="Coupons")
    for name in sorted(campaigns):
        counters = issuer.counters(name)
        states = ", ".join(f"{s} {n:,}" for s, n in sorted(counters.by_status.items()))
        table.add_row(name, campaigns[name].target_segment, f"{counters.total_stock:,}",
                      f"{counters.issued:,}", f"{counters.remaining:,}",
                      f"{counters.day_issued:,}", states or "-")
    console.print(table)


def _print_rules(kequn: KequnContext, db: ServingDB, console: Console) -> None:
    """Each rule's orders by day and decision, and the touch outbox by channel and state."""
    if not kequn.project.rules or not db.has_table("rule_orders"):
        return
    table = Table("rule", "as of", "orders", "by decision", title="Rule orders")
    rows = db.fetchall("SELECT rule, as_of, decision, count(*) FROM rule_orders "
                       "GROUP BY rule, as_of, decision ORDER BY rule, as_of, decision")
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    for rule, as_of, decision, n in rows:
        grouped.setdefault((str(rule), str(as_of)), {})[str(decision)] = int(n)
    for (rule, as_of), counts in grouped.items():
        table.add_row(rule, as_of, f"{sum(counts.values()):,}",
                      ", ".join(f"{d} {n:,}" for d, n in counts.items()))
    console.print(table)
    outbox = Table("rule", "channel", "state", "messages", title="Touch outbox")
    for rule, channel, state, n in db.fetchall(
            "SELECT rule, channel, state, count(*) FROM touch_outbox "
            "GROUP BY rule, channel, state ORDER BY rule, channel, state"):
        outbox.add_row(str(rule), str(channel), str(state), f"{int(n):,}")
    console.print(outbox)
