"""``kequn segments ...``: thin commands over the project, the plan and the segments engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.context import KequnContext
from cli.common import kequn_context, parse_day
from cli.style import display, number, record, row, table
from kequn.errors import KequnError, Location, ValidationError, raise_collected
from plan.segments import CompiledSegment, compile_segment
from project.edit import ensure_file_segment, existing_file_segment
from project.edit import share as share_segment
from project.model import Project

# The segment engine (DuckDB, numpy, pyarrow) is imported by the commands that run it, so
# that listing, validating or sharing starts quickly.

segments_app = typer.Typer(help="Segments (客群): validate, preview, compile, import, share.",
                           no_args_is_help=True)


def _outside(kequn: KequnContext, paths: list[Path]) -> list[Path]:
    """The files among ``paths`` that are not in the project's segments folder."""
    root = kequn.settings.segments_dir.resolve()
    return [p for p in paths if not p.resolve().is_relative_to(root)]


def _compiled(kequn: KequnContext, name_or_path: str) -> CompiledSegment:
    """The compiled segment of a saved name, or of a draft .sql file (checked in place of
    its namesake); a broken one raises its located problems."""
    path = Path(name_or_path)
    if not (name_or_path.endswith(".sql") or path.is_file()):
        if name_or_path not in kequn.plan.segments:
            kequn.project.segment(name_or_path)  # raises: unknown, or its own problems
        return kequn.plan.segments[name_or_path]
    project = kequn.project_with(_outside(kequn, [path]))
    raise_collected(project.problems("segment", paths=[path]))
    for segment in project.segments.values():
        if segment.path.resolve() == path.resolve():
            return compile_segment(segment)
    broken = next((b for b in project.broken_of("segment").values()
                   if b.path.resolve() == path.resolve()), None)
    if broken is not None:
        raise ValidationError(broken.reason, Location(path))
    raise ValidationError("not a segment definition", Location(path))


def _waiting_problems(project: Project, paths: list[Path] | None) -> list[KequnError]:
    """A located problem for each segment (of ``paths``) that needs a broken definition."""
    wanted = {p.resolve() for p in paths} if paths else None
    problems: list[KequnError] = []
    for broken in project.broken_of("segment").values():
        if broken.errors or (wanted is not None and broken.path.resolve() not in wanted):
            continue
        segment = broken.definition
        where = segment.definition.location("name") if segment is not None \
            else Location(broken.path)
        problems.append(ValidationError(broken.reason, where))
    return problems


def segment_files(paths: list[Path]) -> list[Path]:
    """Every ``.sql`` file under the given files/folders, sorted, without duplicates."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*.sql") if p.is_file())
        else:
            found.add(path)
    return sorted(found)


@segments_app.command("validate")
def validate(ctx: typer.Context,
             paths: Annotated[list[Path] | None, typer.Argument(
                 help="Files or folders to check (default: every segment).")] = None) -> None:
    """Check definitions: every problem with file:line:col; exit 1 if any."""
    kequn = kequn_context(ctx)
    files = segment_files(paths or [])
    project = kequn.project_with(_outside(kequn, files)) if files else kequn.project
    problems = project.problems("segment", paths=files or None)
    raise_collected([*problems, *_waiting_problems(project, files or None)])
    wanted = {p.resolve() for p in files}
    checked = [s for s in project.segments.values() if not files or s.path.resolve() in wanted]
    from segments.catalog import warehouse_problems

    raise_collected(warehouse_problems(kequn.warehouse.path, checked, project.tags))
    typer.echo(f"{number(len(checked))} segment(s) OK")


@segments_app.command("preview")
def preview(ctx: typer.Context,
            name: Annotated[str, typer.Argument(help="Segment name or draft .sql file.")],
            as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD).")],
            sample: Annotated[int, typer.Option(help="Sample size.")] = 10) -> None:
    """Size, sample, compiled SQL and time for a segment or a draft; writes nothing."""
    from segments.preview import preview_segment

    kequn = kequn_context(ctx)
    day = parse_day(as_of)
    compiled = _compiled(kequn, name)
    if compiled.segment.kind == "sql":
        from segments.catalog import warehouse_problems

        raise_collected(warehouse_problems(kequn.warehouse.path, [compiled.segment],
                                           kequn.project.tags, allow_pending=False,
                                           day=day.isoformat()))
    result = preview_segment(kequn.warehouse, compiled, day, sample_size=sample,
                             sandbox=kequn.sandbox_limits)
    display(record({
        "segment": f"{result.segment} ({compiled.segment.kind})", "business day": day,
        "size": result.size,
        "sample": ", ".join(str(i) for i in result.sample) or "(empty)",
        "time": f"{result.elapsed_s:.3f} s",
    }, title=f"segment {result.segment} preview (nothing written)"))
    typer.echo("compiled SQL:")
    typer.echo(result.sql)


@segments_app.command("compile")
def compile_(ctx: typer.Context,
             name: Annotated[str, typer.Argument(help="Segment name or .sql file.")],
             dialect: Annotated[str, typer.Option(help="duckdb, spark or trino.")] = "duckdb",
             ) -> None:
    """Print the segment's SQL in a dialect."""
    typer.echo(_compiled(kequn_context(ctx), name).sql(dialect))


@segments_app.command("overlap")
def overlap(ctx: typer.Context,
            names: Annotated[list[str], typer.Argument(help="Two or more segments.")],
            as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD).")]) -> None:
    """Pairwise overlap matrix of materialised segments for a day."""
    from segments.overlap import overlap as compute_overlap

    kequn = kequn_context(ctx)
    day = parse_day(as_of)
    for name in names:
        kequn.project.segment(name)
    with kequn.connect_warehouse(read_only=True) as con:
        result = compute_overlap(con, names, day)
    out = table("segment", *result.names, numeric=result.names,
                title=f"overlap on business day {day} (diagonal: sizes)")
    for name, counts in zip(result.names, result.counts, strict=True):
        row(out, name, *counts)
    display(out)


@segments_app.command("import")
def import_(ctx: typer.Context,
            file: Annotated[Path, typer.Argument(help="CSV or XLSX file.", exists=True,
                                                  dir_okay=False)],
            name: Annotated[str, typer.Option("--name", help="Segment name.")],
            match: Annotated[str | None, typer.Option(
                "--match", help="id, phone or phone_hash (default: the segment's own, "
                "else id).")] = None,
            column: Annotated[str, typer.Option(help="Column to read (default: guess).")] = "",
            owner: Annotated[str, typer.Option(help="Owner of a new segment.")]
            = "team:data_platform",
            max_bytes: Annotated[int | None, typer.Option(
                "--max-bytes", help="Size cap (default: the import_max_bytes setting, "
                "KEQUN_IMPORT_MAX_BYTES, 64 MiB).")] = None) -> None:
    """Import a file into a file segment (created if missing); report every row not imported."""
    from segments.imports import import_file

    kequn = kequn_context(ctx)
    segments_dir = kequn.settings.segments_dir
    existing = existing_file_segment(segments_dir, name)
    if existing is not None and match is not None and match != existing.match:
        raise ValidationError(f"segment '{name}' matches by {existing.match}, not {match}: "
                              f"re-import with --match {existing.match} (or without --match)",
                              existing.definition.location("match"))
    match = match or (existing.match if existing is not None else "id")
    cap = max_bytes if max_bytes is not None else kequn.settings.import_max_bytes
    with kequn.connect_warehouse() as con:
        report = import_file(con, name, file, match, column=column, max_bytes=cap)
    # the definition is written only once the import is stored
    path, created = ensure_file_segment(segments_dir, name, match, owner=owner)
    if created:
        typer.echo(f"created {path}")
    state = "imported" if report.changed else "unchanged (same file already imported)"
    typer.echo(f"{report.file_name}: {number(report.rows)} rows, {number(report.matched)} "
               f"matched, {number(report.unmatched)} unmatched, {number(report.duplicate)} "
               f"duplicate, {number(report.rejected)} rejected; {state}")
    shown = report.issues[:20]
    if shown:
        out = table("row", "status", "value", "reason", title="rows not imported",
                    numeric=("row",))
        for issue in shown:
            row(out, issue.row, issue.status, issue.value, issue.reason)
        display(out)
    if len(report.issues) > len(shown):
        typer.echo(f"... {number(len(report.issues) - len(shown))} more")
    if report.report_path:
        typer.echo(f"rows not imported: {report.report_path}")


@segments_app.command("explain")
def explain(ctx: typer.Context,
            name: Annotated[str, typer.Argument(help="Segment name.")],
            customer_id: Annotated[int, typer.Argument(help="Customer id.")],
            as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD).")]) -> None:
    """Why a customer is in or out: each rule condition with the customer's tag values."""
    from segments.explain import explain as explain_member

    kequn = kequn_context(ctx)
    day = parse_day(as_of)
    compiled = _compiled(kequn, name)
    with kequn.connect_warehouse(read_only=True) as con:
        result = explain_member(con, compiled, customer_id, day)
    verdict = {True: "is a member of", False: "is not a member of",
               None: "has no recorded membership in"}[result.member]
    typer.echo(f"customer {customer_id} {verdict} segment '{result.segment}' on business day "
               f"{result.as_of}")
    if result.conditions:
        out = table("condition", "result", "the customer's values")
        for c in result.conditions:
            row(out, c.condition, {True: "true", False: "false", None: "NULL"}[c.result],
                ", ".join(f"{k}={_literal(v)}" for k, v in c.values.items()))
        display(out)
    for note in result.notes:
        typer.echo(note)


def _literal(value: object) -> str:
    """A tag value as SQL reads it: NULL, TRUE, FALSE, 3, text."""
    if value is None or isinstance(value, bool):
        return "NULL" if value is None else str(value).upper()
    return str(value)


@segments_app.command("history")
def history(ctx: typer.Context,
            name: Annotated[str, typer.Argument(help="Segment name.")],
            days: Annotated[int, typer.Option(min=1, help="Show the last N built days.")] = 30,
            ) -> None:
    """Size, entered and left per business day, with a size sparkline."""
    from app.segment_history import read_history
    from cli.style import sparkline

    kequn = kequn_context(ctx)
    kequn.project.segment(name)  # raises for an unknown or broken segment
    rows = []
    if kequn.settings.warehouse.exists():
        with kequn.connect_warehouse(read_only=True) as con:
            rows = read_history(con, name, days)
    if not rows:
        typer.echo(f"{name}: no built day yet (run kequn materialize)")
        return
    out = table("business day", "size", "entered", "left", title=f"segment {name}",
                numeric=("size", "entered", "left"))
    for day in rows:
        row(out, day.as_of, day.size, day.entered, day.exited)
    display(out)
    display(f"size {rows[0].as_of} .. {rows[-1].as_of}  {sparkline([r.size for r in rows])}"
            f"  ({number(rows[0].size)} -> {number(rows[-1].size)})")


@segments_app.command("list")
def list_(ctx: typer.Context,
          owner: Annotated[str | None, typer.Option(help="Only this owner team.")] = None,
          shared_with: Annotated[str | None, typer.Option(
              "--shared-with", help="Only segments shared with (or owned by) this team.")]
          = None,
          favorites: Annotated[str | None, typer.Option(
              "--favorites", help="Only this user's favourites.")] = None) -> None:
    """List segments with owner, sharing and description."""
    kequn = kequn_context(ctx)
    project = kequn.project
    segments = sorted(project.segments.values(), key=lambda s: s.name)
    if owner:
        segments = [s for s in segments if s.owner == owner]
    if shared_with:
        segments = [s for s in segments if shared_with in s.shared_with or s.owner == shared_with]
    if favorites:
        from segments.favorites import favorites_of

        marked: set[str] = set()
        if kequn.settings.warehouse.exists():
            with kequn.connect_warehouse(read_only=True) as con:
                marked = set(favorites_of(con, favorites))
        segments = [s for s in segments if s.name in marked]
    if segments:
        out = table("segment", "kind", "owner", "shared with", "description",
                    title="segments")
        for s in segments:
            row(out, s.name, s.kind, s.owner, s.shared_with, s.description)
        display(out)
    problems = project.problems("segment")
    if problems:
        typer.echo(f"({len(problems)} definition problem(s); run 'kequn segments validate')",
                   err=True)


@segments_app.command("share")
def share(ctx: typer.Context,
          name: Annotated[str, typer.Argument(help="Segment name.")],
          team: Annotated[str, typer.Argument(help="Team, e.g. team:marketing.")],
          remove: Annotated[bool, typer.Option("--remove", help="Stop sharing.")] = False,
          ) -> None:
    """Share a segment with a team (rewrites shared_with in its definition file)."""
    kequn = kequn_context(ctx)
    segment = kequn.project.segment(name)
    before = list(segment.shared_with)
    teams = share_segment(segment, team, remove=remove)
    kequn.audit("segment_unshare" if remove else "segment_share", f"segment:{name}",
                before=before, after=list(teams), detail=team)
    typer.echo(f"{name} shared with: {', '.join(teams) or 'nobody'} ({segment.path})")


@segments_app.command("favorite")
def favorite(ctx: typer.Context,
             name: Annotated[str, typer.Argument(help="Segment name.")],
             user: Annotated[str, typer.Option("--user", help="User name.")],
             remove: Annotated[bool, typer.Option("--remove", help="Unmark.")] = False) -> None:
    """Mark (or unmark) a segment as a user's favourite (stored in the warehouse)."""
    from segments.favorites import add_favorite, remove_favorite

    kequn = kequn_context(ctx)
    kequn.project.segment(name)
    with kequn.connect_warehouse() as con:
        changed = (remove_favorite if remove else add_favorite)(con, user, name)
    if changed:
        kequn.audit("segment_unfavorite" if remove else "segment_favorite", f"segment:{name}",
                    before={"favorite_of": user, "marked": remove},
                    after={"favorite_of": user, "marked": not remove}, user=user)
    verb = "removed from" if remove else "added to"
    typer.echo(f"{name} {verb} {user}'s favourites" + ("" if changed else " (no change)"))


def register(app: typer.Typer) -> None:
    """Add the ``segments`` sub-app."""
    app.add_typer(segments_app, name="segments")
