"""``kequn segments ...``: thin commands over the segments library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kequn.cli._common import parse_day
from kequn.errors import KequnError, raise_collected
from kequn.settings import current_settings

segments_app = typer.Typer(help="Segments (客群): validate, preview, compile, import, share.",
                           no_args_is_help=True)


def _project(draft: Path | None = None):
    from segments.load import collect_segments

    settings = current_settings()
    project, errors = collect_segments(settings.segments_dir, draft=draft)
    return settings, project, errors


def _compiled(name_or_path: str):
    """(settings, compiled segment) for a saved segment name or a draft file path."""
    from segments.compile import compile_segment
    from segments.load import tag_types

    path = Path(name_or_path)
    draft = path if name_or_path.endswith(".sql") or path.is_file() else None
    settings, project, errors = _project(draft)
    if draft is not None:
        name = next(s.name for s in project.segments.values() if s.path == draft)
    else:
        name = name_or_path
    segment = project.get(name)
    related = [e for e in errors if e.path in (segment.path, None)]
    raise_collected(related)
    return settings, compile_segment(segment, tag_types(settings.tags_dir))


@segments_app.command("validate")
def validate(paths: Annotated[list[Path] | None, typer.Argument(
        help="Files or folders to check (default: every segment).")] = None) -> None:
    """Check definitions: every problem with file:line:col; exit 1 if any."""
    from segments.compile import compile_segment
    from segments.load import collect_segments, segment_files, tag_types

    settings = current_settings()
    extra = segment_files(paths or [])
    project, errors = collect_segments(settings.segments_dir, extra)
    types = tag_types(settings.tags_dir)
    for segment in project.segments.values():
        try:
            compile_segment(segment, types)
        except KequnError as exc:
            errors.append(exc)
    if paths:
        wanted = {p.resolve() for p in extra}
        errors = [e for e in errors if e.path is None or e.path.resolve() in wanted]
        count = sum(1 for s in project.segments.values() if s.path.resolve() in wanted)
    else:
        count = len(project.segments)
    raise_collected(errors)
    typer.echo(f"{count} segment(s) OK")


@segments_app.command("preview")
def preview(name: Annotated[str, typer.Argument(help="Segment name or draft .sql file.")],
            as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD).")],
            sample: Annotated[int, typer.Option(help="Sample size.")] = 10) -> None:
    """Size, sample, compiled SQL and time for a segment or a draft; writes nothing."""
    from segments.preview import preview_segment

    day = parse_day(as_of)
    settings, compiled = _compiled(name)
    result = preview_segment(settings.warehouse, compiled, day, sample_size=sample)
    typer.echo(f"segment {result.segment} ({compiled.segment.kind}) as of {day}")
    typer.echo(f"size: {result.size}")
    typer.echo(f"sample: {', '.join(str(i) for i in result.sample) or '(empty)'}")
    typer.echo(f"time: {result.elapsed_s:.3f} s")
    typer.echo("compiled SQL:")
    typer.echo(result.sql)


@segments_app.command("compile")
def compile_(name: Annotated[str, typer.Argument(help="Segment name or .sql file.")],
             dialect: Annotated[str, typer.Option(help="duckdb, spark or trino.")] = "duckdb",
             ) -> None:
    """Print the segment's SQL in a dialect."""
    _, compiled = _compiled(name)
    typer.echo(compiled.sql(dialect))


@segments_app.command("overlap")
def overlap(names: Annotated[list[str], typer.Argument(help="Two or more segments.")],
            as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD).")]) -> None:
    """Pairwise overlap matrix of materialised segments for a day."""
    from kequn.warehouse import connect
    from segments.overlap import overlap as compute

    day = parse_day(as_of)
    settings, project, _ = _project()
    for name in names:
        project.get(name)
    con = connect(settings.warehouse, read_only=True)
    try:
        result = compute(con, names, day)
    finally:
        con.close()
    typer.echo(f"overlap as of {day} (diagonal: sizes)")
    typer.echo(result.render())


@segments_app.command("import")
def import_(file: Annotated[Path, typer.Argument(help="CSV or XLSX file.", exists=True,
                                                  dir_okay=False)],
            name: Annotated[str, typer.Option("--name", help="Segment name.")],
            match: Annotated[str, typer.Option("--match", help="id, phone or phone_hash.")]
            = "id",
            column: Annotated[str, typer.Option(help="Column to read (default: guess).")] = "",
            owner: Annotated[str, typer.Option(help="Owner of a new segment.")]
            = "team:data_platform",
            max_bytes: Annotated[int | None, typer.Option(
                "--max-bytes", help="Size cap (default KEQUN_IMPORT_MAX_BYTES or 64 MiB).")]
            = None) -> None:
    """Import a file into a file segment (created if missing); report every row not imported."""
    from kequn.warehouse import connect
    from segments.definitions import ensure_file_segment
    from segments.file_import import import_file

    settings = current_settings()
    path, created = ensure_file_segment(settings.segments_dir, name, match, owner=owner)
    con = connect(settings.warehouse)
    try:
        report = import_file(con, name, file, match, column=column, max_bytes=max_bytes)
    finally:
        con.close()
    if created:
        typer.echo(f"created {path}")
    typer.echo(report.summary())
    shown = report.issues[:20]
    for issue in shown:
        typer.echo(f"  row {issue.row}: {issue.status}: {issue.reason}"
                   + (f" ({issue.value})" if issue.value else ""))
    if len(report.issues) > len(shown):
        typer.echo(f"  ... {len(report.issues) - len(shown)} more")
    if report.report_path:
        typer.echo(f"rows not imported: {report.report_path}")


@segments_app.command("explain")
def explain(name: Annotated[str, typer.Argument(help="Segment name.")],
            customer_id: Annotated[int, typer.Argument(help="Customer id.")],
            as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD).")]) -> None:
    """Why a customer is in or out: each rule condition with the customer's tag values."""
    from kequn.warehouse import connect
    from segments.explain import explain as run

    day = parse_day(as_of)
    settings, compiled = _compiled(name)
    con = connect(settings.warehouse, read_only=True)
    try:
        result = run(con, compiled, customer_id, day)
    finally:
        con.close()
    typer.echo(result.render())


@segments_app.command("list")
def list_(owner: Annotated[str | None, typer.Option(help="Only this owner team.")] = None,
          shared_with: Annotated[str | None, typer.Option(
              "--shared-with", help="Only segments shared with (or owned by) this team.")]
          = None,
          favorites: Annotated[str | None, typer.Option(
              "--favorites", help="Only this user's favourites.")] = None) -> None:
    """List segments with owner, sharing and description."""
    settings, project, errors = _project()
    segments = sorted(project.segments.values(), key=lambda s: s.name)
    if owner:
        segments = [s for s in segments if s.owner == owner]
    if shared_with:
        segments = [s for s in segments if shared_with in s.shared_with or s.owner == shared_with]
    if favorites:
        from kequn.warehouse import connect
        from segments.favorites import favorites_of

        if settings.warehouse.exists():
            con = connect(settings.warehouse, read_only=True)
            try:
                marked = set(favorites_of(con, favorites))
            finally:
                con.close()
        else:
            marked = set()
        segments = [s for s in segments if s.name in marked]
    for s in segments:
        shared = ",".join(s.shared_with) or "-"
        typer.echo(f"{s.name:<28} {s.kind:<8} {s.owner:<20} {shared:<32} {s.description}")
    if errors:
        typer.echo(f"({len(errors)} definition problem(s); run 'kequn segments validate')",
                   err=True)


@segments_app.command("share")
def share(name: Annotated[str, typer.Argument(help="Segment name.")],
          team: Annotated[str, typer.Argument(help="Team, e.g. team:marketing.")],
          remove: Annotated[bool, typer.Option("--remove", help="Stop sharing.")] = False,
          ) -> None:
    """Share a segment with a team (rewrites shared_with in its definition file)."""
    from segments.share import share as run

    _, project, _ = _project()
    segment = project.get(name)
    teams = run(segment, team, remove=remove)
    typer.echo(f"{name} shared with: {', '.join(teams) or 'nobody'} ({segment.path})")


@segments_app.command("favorite")
def favorite(name: Annotated[str, typer.Argument(help="Segment name.")],
             user: Annotated[str, typer.Option("--user", help="User name.")],
             remove: Annotated[bool, typer.Option("--remove", help="Unmark.")] = False) -> None:
    """Mark (or unmark) a segment as a user's favourite (stored in the warehouse)."""
    from kequn.warehouse import connect
    from segments.favorites import add_favorite, remove_favorite

    settings, project, _ = _project()
    project.get(name)
    con = connect(settings.warehouse)
    try:
        changed = (remove_favorite if remove else add_favorite)(con, user, name)
    finally:
        con.close()
    verb = "removed from" if remove else "added to"
    typer.echo(f"{name} {verb} {user}'s favourites" + ("" if changed else " (no change)"))


def register(app: typer.Typer) -> None:
    """Add the ``segments`` sub-app."""
    app.add_typer(segments_app, name="segments")
