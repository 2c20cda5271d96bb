"""`kequn sync SEGMENT --as-of D [--dry-run] [--force]` and `kequn sync log [SEGMENT]`.

The command is thin over :func:`sync.run.sync_segment`, the same code the
``sync/<segment>`` Dagster assets run. A blocked sync, or a day older than the synced
one, exits 1 with the reason on stderr; ``--force`` overrides both. ``kequn sync
SEGMENT`` is short for ``kequn sync run SEGMENT`` (a segment named ``log`` or ``run``
is synced with the long form).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated

import click
import typer
from typer.core import TyperGroup

from app.context import KequnContext
from cli.common import kequn_context, parse_day
from cli.style import display, moment, number, row
from cli.style import table as styled_table
from kequn.errors import ExecutionError, ValidationError
from project.segment import Segment

if TYPE_CHECKING:
    from sync.run import SyncResult


def synced_segment(kequn: KequnContext, name: str) -> Segment:
    """The synced segment called ``name``; a located error if unknown, broken or not synced."""
    segment = kequn.project.segment(name)
    if segment.sync is None:
        raise ValidationError(
            f"segment '{name}' is not synced", segment.definition.location(None),
            hint="add 'sync on' (and optionally sync_schedule, max_removed_ratio...) "
            "to its SEGMENT header")
    return segment


def run_sync(kequn: KequnContext, name: str, as_of: date, *, force: bool,
             dry_run: bool) -> tuple[Segment, SyncResult]:
    """Sync ``name`` for ``as_of`` with the settings of its definition file."""
    from serving.db import connection_errors
    from sync.run import sync_segment  # the sync engine loads only for this command

    segment = synced_segment(kequn, name)
    if kequn.settings.engine == "spark":  # read the snapshot Spark wrote to the lake
        from app.engines import stage_from_lake

        stage_from_lake(kequn, name, as_of)
    with kequn.connect_warehouse(read_only=dry_run) as con:
        try:
            db = kequn.connect_serving()
        except connection_errors() as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExecutionError(f"cannot reach the serving database ({detail}); nothing "
                                 "was synced") from None
        try:
            result = sync_segment(con, db, name, as_of, segment.sync, force=force,
                                  dry_run=dry_run, definition_hash=segment.definition_hash,
                                  lock_timeout=kequn.settings.sync_lock_wait_s)
        finally:
            db.close()
    return segment, result


def _sample(ids: tuple[int, ...], total: int) -> str:
    if not ids:
        return ""
    more = ", ..." if total > len(ids) else ""
    return "  e.g. " + ", ".join(str(i) for i in ids) + more


def describe(result: SyncResult) -> str:
    """The plan/result as a few aligned lines."""
    previous = (f"synced snapshot {result.previous_as_of}, {number(result.previous_size)} "
                "members" if result.previous_as_of else "nothing synced yet")
    lines = [
        f"segment {result.segment}, business day {result.as_of} ({previous})",
        f"  adds       {result.added:>12,}{_sample(result.sample_added, result.added)}",
        f"  removes    {result.removed:>12,}{_sample(result.sample_removed, result.removed)}",
        f"  unchanged  {result.unchanged:>12,}",
        f"  snapshot   {result.target_size:>12,} members",
        f"  guardrails {result.verdict.text()}",
    ]
    if result.recovered:
        lines.append("  (planned against coupon_eligibility itself: the warehouse tracking did "
                     "not match the serving database)")
    if result.dry_run:
        lines.append(f"dry run: nothing written; the sync would be {result.status}"
                     + (f" ({result.reason})" if result.reason else ""))
    else:
        lines.append(f"{result.status} in {result.duration_s:.2f} s (sync_id {result.sync_id})"
                     + (f": {result.reason}" if result.reason else ""))
    return "\n".join(lines)


class _SyncGroup(TyperGroup):
    """``kequn sync SEGMENT ...`` runs a sync (the ``run`` command); ``kequn sync log``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


sync_app = typer.Typer(
    cls=_SyncGroup, no_args_is_help=True,
    help="Sync a segment into coupon_eligibility (kequn sync SEGMENT --as-of D), or show "
    "the sync log (kequn sync log [SEGMENT]).")


@sync_app.command("run")
def sync(
    ctx: typer.Context,
    segment: Annotated[str, typer.Argument(help="Segment to sync.")],
    as_of: Annotated[str, typer.Option("--as-of", help="Business day (YYYY-MM-DD).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; write nothing.")]
    = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Apply even when blocked by guardrails or older than the synced day.")]
    = False,
) -> None:
    """Sync a segment's members for a business day into coupon_eligibility (the default:
    ``kequn sync SEGMENT`` is ``kequn sync run SEGMENT``)."""
    kequn = kequn_context(ctx)
    target, result = run_sync(kequn, segment, parse_day(as_of), force=force, dry_run=dry_run)
    typer.echo(describe(result))
    if force and not dry_run:
        kequn.audit("sync_force", f"segment:{segment}", after={
            "as_of": as_of, "status": result.status, "reason": result.reason},
            detail=f"forced sync as of {as_of}: {result.status}")
    if result.status == "blocked":
        typer.echo(f"{target.path}: sync of '{segment}' blocked: {result.reason} "
                   "(use --force to apply anyway)", err=True)
        raise typer.Exit(1)
    if result.skipped_older:
        typer.echo(f"{target.path}: {result.reason}", err=True)
        raise typer.Exit(1)


@sync_app.command("log")
def log(
    ctx: typer.Context,
    segment: Annotated[str | None, typer.Argument(help="Only this segment.",
                                                  show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to show.")] = 20,
) -> None:
    """The newest sync_log rows: business day, status, counts and reason."""
    show_log(kequn_context(ctx), segment, limit)


def show_log(kequn: KequnContext, segment: str | None, limit: int) -> None:
    """Print the newest sync_log rows."""
    from sync.log import sync_log

    db = kequn.connect_serving()
    try:
        rows = sync_log(db, segment, limit)
    finally:
        db.close()
    out = styled_table("business day", "segment", "status", "added", "removed",
                       "unchanged", "started (UTC)", "reason", title="sync log",
                       numeric=("added", "removed", "unchanged"))
    for found in rows:
        row(out, str(found["as_of"]), found["segment"], found["status"], found["added"],
            found["removed"], found["unchanged"], moment(found["started_at"], "UTC"),
            found["reason"])
    display(out)


def register(app: typer.Typer) -> None:
    """Add the `sync` commands."""
    app.add_typer(sync_app, name="sync")
