"""The end-of-demo summary: tags with coverage, segments, syncs, coupons and rule orders."""

from __future__ import annotations

from datetime import date

from rich.console import Console

from app.context import KequnContext
from cli.style import row, table
from issuance.service import Issuer
from serving.db import ServingDB
from warehouse.db import table_exists


def print_summary(kequn: KequnContext, as_of: date, console: Console) -> None:
    """Print what the pipeline produced for ``as_of``; sections appear as areas exist, and
    broken definitions (if any) come first, with why."""
    broken = kequn.project.broken
    if broken:
        out = table("kind", "name", "file", "why", title="Broken definitions (not built)")
        for item in broken.values():
            row(out, item.kind, item.name, item.path, item.reason)
        console.print(out)
    with kequn.connect_warehouse(read_only=True) as con:
        if table_exists(con, "tags", "catalog"):
            out = table("tag", "category", "owner", "kind", "type", "coverage", "ratio",
                        title=f"Tags (business day {as_of})", numeric=("coverage", "ratio"))
            for found in con.execute(
                "SELECT name, category_l1 || '/' || category_l2, owner, kind, value_type, "
                "coverage, coverage_ratio FROM tags.catalog WHERE as_of = ? "
                "ORDER BY category_l1, category_l2, name",
                [as_of],
            ).fetchall():
                row(out, *found[:5], found[5], f"{found[6]:.1%}")
            console.print(out)
        if table_exists(con, "segments", "members"):
            out = table("segment", "members", title=f"Segments (business day {as_of})",
                        numeric=("members",))
            for name, size in con.execute(  # history: every built segment, either engine
                "SELECT segment, size FROM segments.history WHERE as_of = $d UNION ALL "
                "SELECT segment, count(*) FROM segments.members WHERE as_of = $d AND segment "
                "NOT IN (SELECT segment FROM segments.history WHERE as_of = $d) "
                "GROUP BY segment ORDER BY segment",
                {"d": as_of},
            ).fetchall():
                row(out, name, size)
            console.print(out)
    _print_serving(kequn, console)


def _print_serving(kequn: KequnContext, console: Console) -> None:
    db = kequn.connect_serving()
    try:
        rows = db.fetchall(
            "SELECT segment, as_of, status, added, removed, unchanged, reason FROM sync_log "
            "ORDER BY started_at, segment"
        )
        if rows:
            out = table("segment", "business day", "status", "added", "removed", "unchanged",
                        "reason", title="Syncs to coupon_eligibility",
                        numeric=("added", "removed", "unchanged"))
            for segment, as_of, status, added, removed, unchanged, reason in rows:
                row(out, segment, str(as_of), status, added, removed, unchanged, reason)
            console.print(out)
        _print_coupons(kequn, db, console)
        _print_rules(kequn, db, console)
    finally:
        db.close()


def _print_coupons(kequn: KequnContext, db: ServingDB, console: Console) -> None:
    campaigns = kequn.project.campaigns
    if not campaigns:
        return
    issuer = Issuer(db, campaigns)
    out = table("campaign", "target segment", "stock", "issued", "remaining",
                "issued this business day", "by state", title="Coupons",
                numeric=("stock", "issued", "remaining", "issued this business day"))
    for name in sorted(campaigns):
        counters = issuer.counters(name)
        row(out, name, campaigns[name].target_segment, counters.total_stock, counters.issued,
            counters.remaining, counters.day_issued, dict(sorted(counters.by_status.items())))
    console.print(out)


def _print_rules(kequn: KequnContext, db: ServingDB, console: Console) -> None:
    """Each rule's orders by day and decision, and the touch outbox by channel and state."""
    if not kequn.project.rules or not db.has_table("rule_orders"):
        return
    out = table("rule", "business day", "orders", "by decision", title="Rule orders",
                numeric=("orders",))
    rows = db.fetchall("SELECT rule, as_of, decision, count(*) FROM rule_orders "
                       "GROUP BY rule, as_of, decision ORDER BY rule, as_of, decision")
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    for rule, as_of, decision, n in rows:
        grouped.setdefault((str(rule), str(as_of)), {})[str(decision)] = int(n)
    for (rule, as_of), counts in grouped.items():
        row(out, rule, as_of, sum(counts.values()), counts)
    console.print(out)
    outbox = table("rule", "channel", "state", "messages", title="Touch outbox",
                   numeric=("messages",))
    for rule, channel, state, n in db.fetchall(
            "SELECT rule, channel, state, count(*) FROM touch_outbox "
            "GROUP BY rule, channel, state ORDER BY rule, channel, state"):
        row(outbox, str(rule), str(channel), str(state), int(n))
    console.print(outbox)
