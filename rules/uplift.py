"""Uplift: the acted group against the control group on an outcome tag.

For a rule's orders with ``as_of`` between two days, the acted customers (decision
``act`` or ``quiet_delayed``) and the control group (``control``) are compared on a
boolean outcome tag read ``horizon`` days after each order's day (e.g. ``drawn`` 14 days
later: "drew within 14 days"), from ``tags.customer_tags`` (the latest built day up to
then). Result: group sizes, outcome rates, their difference and its 95% interval
(normal approximation, unpooled standard error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl

from kequn.errors import ValidationError
from kequn.tables import CUSTOMER_TAGS, qualified
from serving.db import ServingDB

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Uplift:
    """Acted against control on one outcome."""

    rule: str
    outcome: str
    horizon_days: int
    acted: int
    acted_hits: int
    control: int
    control_hits: int

    @property
    def acted_rate(self) -> float:
        return self.acted_hits / self.acted if self.acted else math.nan

    @property
    def control_rate(self) -> float:
        return self.control_hits / self.control if self.control else math.nan

    @property
    def difference(self) -> float:
        """Acted rate minus control rate."""
        return self.acted_rate - self.control_rate

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% interval of the difference (NaN when a group is empty).

        >>> u = Uplift("r", "drawn", 14, 1000, 300, 1000, 250)
        >>> [round(x, 4) for x in u.interval]
        [0.0109, 0.0891]
        """
        if not self.acted or not self.control:
            return (math.nan, math.nan)
        p1, p0 = self.acted_rate, self.control_rate
        se = math.sqrt(p1 * (1 - p1) / self.acted + p0 * (1 - p0) / self.control)
        return (self.difference - Z95 * se, self.difference + Z95 * se)


def uplift(db: ServingDB, con: duckdb.DuckDBPyConnection, rule: str, first: date, last: date,
           outcome: str, horizon_days: int) -> Uplift:
    """Compare acted and control orders of ``rule`` from ``first`` to ``last``."""
    if last < first:
        raise ValidationError(f"--to {last} is before --from {first}")
    columns = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND "
        "table_name = ?", list(CUSTOMER_TAGS)).fetchall()}
    if outcome not in columns:
        raise ValidationError(f"unknown outcome tag '{outcome}' (no column in "
                              f"{qualified(CUSTOMER_TAGS)})")
    rows = db.fetchall(
        "SELECT customer_id, as_of, decision FROM rule_orders WHERE rule = ? AND as_of >= ? "
        "AND as_of <= ? AND decision IN ('act', 'quiet_delayed', 'control')",
        (rule, first, last))
    frame = pl.DataFrame(
        [(int(c), d if isinstance(d, date) else date.fromisoformat(str(d)[:10]),
          "control" if k == "control" else "acted") for c, d, k in rows],
        schema={"customer_id": pl.Int64, "as_of": pl.Date, "grp": pl.Utf8}, orient="row")
    con.register("kequn_uplift_orders", frame.to_arrow())
    try:
        result = con.execute(
            f'''SELECT o.grp, count(*) AS n,
                   count(*) FILTER (WHERE t."{outcome.replace('"', '')}" IS TRUE) AS hits
                FROM kequn_uplift_orders AS o
                LEFT JOIN {qualified(CUSTOMER_TAGS)} AS t ON t.customer_id = o.customer_id
                  AND t.as_of = (SELECT max(x.as_of) FROM {qualified(CUSTOMER_TAGS)} AS x
                                 WHERE x.as_of <= o.as_of + CAST(? AS INTEGER))
                GROUP BY o.grp''', [horizon_days]).fetchall()
    finally:
        con.unregister("kequn_uplift_orders")
    by = {g: (int(n), int(h)) for g, n, h in result}
    acted, control = by.get("acted", (0, 0)), by.get("control", (0, 0))
    return Uplift(rule, outcome, horizon_days, acted[0], acted[1], control[0], control[1])
