"""Decide what a rule does for each of the day's events (set-based, with polars).

:func:`decide` takes the rule's candidate rows for day D (its compiled query's result)
and what the serving database already knows (orders written, earlier acts, touches
planned per customer and day), and returns the new orders and their messages. Steps, in
order, each a column operation over all rows at once:

1. rows already ordered (same rule, customer and event key) are dropped: a re-run adds
   nothing;
2. ``excluded``: a higher-priority rule of the same exclusion group has the customer that
   day (priority, then name, decides);
3. ``control``: the customer's holdout bucket is below ``holdout * 10000``;
4. ``capped``: beyond the rule's first-N limit (earlier acts count), or one of the
   order's touches would exceed the customer's touches per day or per 7 days (across
   every rule and channel, touches already planned included);
5. ``quiet_delayed``: a touch fell in quiet hours and was moved to their end; else ``act``.

Send times: ``at event`` is day D, ``at due_date`` the event's due date, plus the offset,
at the given time (10:00 if none) in Asia/Shanghai; no ``at`` means as soon as the day's
run happens (D + 1 00:00). A time already past at that point moves to it. Quiet hours
(default 21:00-09:00) delay, never drop.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl

from kequn.days import SHANGHAI, UTC, day_end
from project.rule import HOLDOUT_BUCKETS, Action, Rule, Template


@dataclass
class Decided:
    """New orders (one row each) and the messages of those that act."""

    orders: pl.DataFrame
    """seq, customer_id, event_key, branch, decision, pending; in candidate order (event
    key, customer), ``seq`` increasing from 0 (the write numbers the orders by it). The
    actions an acting order takes are its branch's :func:`plan_json`."""
    messages: pl.DataFrame
    """seq (of the order), action_no, channel, customer_id, text, send_at (naive UTC),
    send_day; in order of seq, action_no."""
    skipped: int = 0
    """Candidate rows already ordered by an earlier run."""

    def counts(self) -> dict[str, int]:
        """Orders by decision."""
        if self.orders.is_empty():
            return {}
        rows = self.orders.group_by("decision").len().sort("decision").iter_rows()
        return {str(d): int(n) for d, n in rows}


def _render(template: Template) -> pl.Expr:
    """The template as one string expression over the row's columns."""
    parts: list[pl.Expr] = []
    text, cursor = template.text, 0
    for match in re.finditer(r"\{(\w+)\}", text):
        if match.start() > cursor:
            parts.append(pl.lit(text[cursor:match.start()]))
        parts.append(pl.col(match[1]).cast(pl.Utf8).fill_null(""))
        cursor = match.end()
    if cursor < len(text):
        parts.append(pl.lit(text[cursor:]))
    return pl.concat_str(parts) if parts else pl.lit("")


def _in_quiet(minutes: pl.Expr, quiet: tuple[tuple[int, int], tuple[int, int]]) -> pl.Expr:
    start = quiet[0][0] * 60 + quiet[0][1]
    end = quiet[1][0] * 60 + quiet[1][1]
    if start <= end:
        return (minutes >= start) & (minutes < end)
    return (minutes >= start) | (minutes < end)


def _send_at(frame: pl.DataFrame, action: Action, rule: Rule, day: date) -> pl.DataFrame:
    """``frame`` with the action's ``send_local`` (naive Asia/Shanghai) and ``delayed``."""
    earliest = day_end(day)
    if action.at == "due_date":
        base = pl.col("due_date").cast(pl.Datetime("us"))
    elif action.at == "event":
        base = pl.lit(datetime(day.year, day.month, day.day), dtype=pl.Datetime("us"))
    else:
        base = None
    if base is None:
        planned = pl.lit(earliest, dtype=pl.Datetime("us"))
    else:
        hour, minute = action.time or (10, 0)
        planned = base + pl.duration(days=action.days, hours=hour, minutes=minute)
    out = frame.with_columns(
        pl.max_horizontal(planned.fill_null(pl.lit(earliest, dtype=pl.Datetime("us"))),
                          pl.lit(earliest, dtype=pl.Datetime("us"))).alias("send_local"))
    if rule.quiet_hours is None:
        return out.with_columns(pl.lit(False).alias("delayed"))
    quiet = rule.quiet_hours
    minutes = pl.col("send_local").dt.hour().cast(pl.Int32) * 60 \
        + pl.col("send_local").dt.minute().cast(pl.Int32)
    end_h, end_m = quiet[1]
    day_start = pl.col("send_local").dt.truncate("1d")
    end_today = day_start + pl.duration(hours=end_h, minutes=end_m)
    moved = pl.when(pl.col("send_local") < end_today).then(end_today).otherwise(
        end_today + pl.duration(days=1))
    return out.with_columns(_in_quiet(minutes, quiet).alias("delayed")).with_columns(
        pl.when(pl.col("delayed")).then(moved).otherwise(pl.col("send_local"))
        .alias("send_local"))


def _planned_touches(rows: pl.DataFrame, rule: Rule, day: date) -> pl.DataFrame:
    """One row per touch an undecided order would send."""
    pieces = []
    for branch, actions in (("then", rule.then), ("else", rule.otherwise or ())):
        subset = rows.filter(pl.col("branch") == branch)
        if subset.is_empty():
            continue
        for index, action in enumerate(actions, start=1):
            if action.kind != "touch":
                continue
            timed = _send_at(subset, action, rule, day)
            pieces.append(timed.select(
                "seq", "customer_id",
                pl.lit(action.channel).alias("channel"),
                pl.lit(action.template).alias("template"),
                _render(rule.templates[action.template]).alias("text"),
                pl.col("send_local"), pl.col("delayed"),
                pl.lit(index).alias("action_no"),
            ))
    if not pieces:
        return pl.DataFrame(schema={
            "seq": pl.UInt32, "customer_id": pl.Int64, "channel": pl.Utf8,
            "template": pl.Utf8, "text": pl.Utf8,
            "send_local": pl.Datetime("us"), "delayed": pl.Boolean, "action_no": pl.Int32,
            "send_day": pl.Date})
    touches = pl.concat(pieces, how="vertical_relaxed")
    return touches.with_columns(pl.col("send_local").dt.date().alias("send_day"))


def _over_caps(touches: pl.DataFrame, existing: pl.DataFrame, rule: Rule) -> pl.DataFrame:
    """The ``seq`` of orders whose touches would pass a per-day or per-week cap."""
    if touches.is_empty():
        return pl.DataFrame(schema={"seq": pl.UInt32})
    # numbered in the order the orders are decided (order, then action), so an earlier
    # order's touches count before a later order's and an order that fits stays in
    t = touches.select("seq", "action_no", "customer_id", "send_day").sort(
        "seq", "action_no").with_row_index("tid")
    ex = existing.rename({"send_day": "ex_day", "n": "ex_n"})
    joined = t.join(ex, on="customer_id", how="inner")
    ex_counts = joined.group_by("tid").agg(
        (pl.when(pl.col("ex_day") == pl.col("send_day")).then(pl.col("ex_n")).otherwise(0)
         .sum()).alias("ex_day_n"),
        (pl.when((pl.col("ex_day") <= pl.col("send_day"))
                 & (pl.col("ex_day") > pl.col("send_day") - pl.duration(days=7)))
         .then(pl.col("ex_n")).otherwise(0).sum()).alias("ex_week_n"))
    # A customer's own touches of this run: one touch counts itself only; the pairwise
    # comparison is needed only for customers with several touches.
    several = t.filter(pl.len().over("customer_id") > 1)
    mine = several.join(several.select("customer_id", pl.col("tid").alias("tid2"),
                                       pl.col("send_day").alias("day2")), on="customer_id")
    mine = mine.filter(pl.col("tid2") <= pl.col("tid")).group_by("tid").agg(
        (pl.col("day2") == pl.col("send_day")).sum().alias("run_day_n"),
        ((pl.col("day2") <= pl.col("send_day"))
         & (pl.col("day2") > pl.col("send_day") - pl.duration(days=7))).sum()
        .alias("run_week_n"))
    scored = t.join(ex_counts, on="tid", how="left").join(mine, on="tid", how="left")
    scored = scored.with_columns(pl.col("ex_day_n", "ex_week_n").fill_null(0),
                                 pl.col("run_day_n", "run_week_n").fill_null(1))
    over = scored.filter(
        (pl.col("ex_day_n") + pl.col("run_day_n") > rule.max_touches_per_day)
        | (pl.col("ex_week_n") + pl.col("run_week_n") > rule.max_touches_per_week))
    return over.select("seq").unique()


ACTING = ("act", "quiet_delayed")
"""The decisions that take the rule's actions."""


def branch_actions(rule: Rule, branch: str) -> tuple[Action, ...]:
    """The actions of ``branch`` (``then`` or ``else``) of ``rule``."""
    return tuple(rule.then if branch == "then" else (rule.otherwise or ()))


def branch_has_coupon(rule: Rule, branch: str) -> bool:
    """Whether ``branch`` of ``rule`` issues a coupon (its orders keep per-order results)."""
    return any(a.kind == "issue_coupon" for a in branch_actions(rule, branch))


def plan_json(rule: Rule, branch: str) -> str:
    """The planned actions of ``branch`` as stored: a JSON list, a coupon's ``result``
    ``pending`` until the issuance module has answered."""
    listed = []
    actions = branch_actions(rule, branch)
    for index, action in enumerate(actions, start=1):
        if action.kind == "issue_coupon":
            listed.append({"action": "issue_coupon", "campaign": action.campaign,
                           "result": "pending"})
        else:
            listed.append({"action": "touch", "channel": action.channel,
                           "template": action.template, "message_no": index})
    return json.dumps(listed, ensure_ascii=False)


def _first_of_each_event(candidates: pl.DataFrame) -> pl.DataFrame:
    """The first row of each (customer_id, event_key), in order. A compiled rule's rows
    come sorted by (event_key, customer_id), where a repeat is next to its first: then a
    comparison with the previous row suffices (no hashing of a million keys)."""
    key, customer = pl.col("event_key"), pl.col("customer_id")
    before_key, before_customer = key.shift(1), customer.shift(1)
    if candidates.height < 2 or candidates.select(
            ((key > before_key) | ((key == before_key) & (customer >= before_customer)))
            .fill_null(True).all()).item():
        return candidates.filter(((key != before_key) | (customer != before_customer))
                                 .fill_null(True))
    return candidates.unique(["customer_id", "event_key"], keep="first", maintain_order=True)


def decide(rule: Rule, candidates: pl.DataFrame, day: date, *,
           existing_keys: pl.DataFrame | None = None, prior_acts: int = 0,
           existing_touches: pl.DataFrame | None = None,
           excluded: pl.Series | None = None) -> Decided:
    """The new orders and messages of ``rule`` for ``day``; see the module docstring.

    ``existing_keys``: (customer_id, event_key) already ordered; ``existing_touches``:
    (customer_id, send_day, n) touches already planned; ``excluded``: customer ids a
    higher-priority rule of the rule's exclusion group takes that day.
    """
    rows = _first_of_each_event(candidates)
    before = rows.height
    if existing_keys is not None and not existing_keys.is_empty():
        rows = rows.join(existing_keys.select("customer_id", "event_key"),
                         on=["customer_id", "event_key"], how="anti", maintain_order="left")
    skipped = before - rows.height
    rows = rows.with_row_index("seq")
    decision = pl.lit(None, dtype=pl.Utf8)
    if excluded is not None and excluded.len():
        decision = pl.when(pl.col("customer_id").is_in(excluded.implode())).then(
            pl.lit("excluded")).otherwise(decision)
    threshold = round(rule.holdout * HOLDOUT_BUCKETS)
    decision = pl.when(decision.is_null() & (pl.col("holdout_bucket") < threshold)).then(
        pl.lit("control")).otherwise(decision)
    rows = rows.with_columns(decision.alias("decision"))
    if rule.first_n is not None:
        room = max(rule.first_n - prior_acts, 0)
        rank = pl.col("decision").is_null().cast(pl.Int64).cum_sum()
        rows = rows.with_columns(pl.when(pl.col("decision").is_null() & (rank > room))
                                 .then(pl.lit("capped")).otherwise(pl.col("decision"))
                                 .alias("decision"))
    open_rows = rows.filter(pl.col("decision").is_null())
    touches = _planned_touches(open_rows, rule, day)
    existing = existing_touches if existing_touches is not None else pl.DataFrame(
        schema={"customer_id": pl.Int64, "send_day": pl.Date, "n": pl.Int64})
    capped = _over_caps(touches, existing.with_columns(pl.col("send_day").cast(pl.Date)), rule)
    delayed = touches.filter(pl.col("delayed")).select("seq").unique()
    rows = rows.with_columns(
        pl.when(pl.col("decision").is_not_null()).then(pl.col("decision"))
        .when(pl.col("seq").is_in(capped["seq"].implode())).then(pl.lit("capped"))
        .when(pl.col("seq").is_in(delayed["seq"].implode())).then(pl.lit("quiet_delayed"))
        .otherwise(pl.lit("act")).alias("decision"))
    acting = rows.filter(pl.col("decision").is_in(ACTING))
    coupon_branches = [b for b in ("then", "else") if branch_has_coupon(rule, b)]
    orders = rows.with_columns(
        (pl.col("decision").is_in(ACTING) & pl.col("branch").is_in(coupon_branches))
        .cast(pl.Int32).alias("pending"),
    ).select("seq", "customer_id", "event_key", "branch", "decision", "pending")
    messages = touches.join(acting.select("seq"), on="seq", how="semi").sort(
        "seq", "action_no")
    messages = messages.with_columns(
        pl.col("send_local").dt.replace_time_zone(str(SHANGHAI))
        .dt.convert_time_zone(str(UTC)).dt.replace_time_zone(None).alias("send_at"),
    ).select("seq", "action_no", "channel", "customer_id", "text", "send_at", "send_day")
    return Decided(orders, messages, skipped)


def send_local(send_at_utc: datetime) -> datetime:
    """A stored (naive UTC) send time as Asia/Shanghai local time."""
    return send_at_utc.replace(tzinfo=UTC).astimezone(SHANGHAI)


def week_window(day: date) -> tuple[date, date]:
    """The 7 days ending on ``day``: the per-week cap's window."""
    return day - timedelta(days=6), day
