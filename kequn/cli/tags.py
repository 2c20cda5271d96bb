"""``kequn tags validate|list|show``: thin commands over :mod:`tags`."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from kequn.cli._common import parse_day
from kequn.errors import Location, ValidationError, did_you_mean

tags_app = typer.Typer(help="Customer tags: validate definitions, list them, show one.",
                       no_args_is_help=True)


def _project(tags_dir: Path | None = None):
    from kequn.settings import current_settings
    from tags.load import load_tags

    return load_tags(tags_dir or current_settings().tags_dir)


def _coverage(as_of: date | None) -> tuple[date | None, dict[str, tuple[int, float]]]:
    """Coverage per tag from tags.catalog (the given day, else the latest); empty if unbuilt."""
    import duckdb

    from kequn.settings import current_settings
    from kequn.warehouse import connect
    from tags.catalog import latest_day, read_coverage

    path = current_settings().warehouse
    if not path.exists():
        return as_of, {}
    try:
        con = connect(path, read_only=True)
    except duckdb.Error:
        return as_of, {}  # another process holds the write lock: list without coverage
    with con:
        day = as_of or latest_day(con)
        return day, (read_coverage(con, day) if day else {})


@tags_app.command("validate")
def validate(
    tags_dir: Annotated[Path | None, typer.Argument(
        help="Tags folder (default: <project>/tags).")] = None,
) -> None:
    """Load and check every tag file; print every problem as file:line:col and exit 1."""
    project = _project(tags_dir)
    atomic, derived = len(project.atomic()), len(project.derived())
    typer.echo(f"{atomic + derived} tags OK ({atomic} atomic, {derived} derived) "
               f"in {project.root}")


@tags_app.command("list")
def list_tags(
    category: Annotated[str | None, typer.Option(
        "--category", help="Only this category: L1 or L1/L2.")] = None,
    owner: Annotated[str | None, typer.Option(
        "--owner", help="Only tags owned by this team (credit_risk or team:credit_risk).")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Coverage of this day (default: the latest built day).")] = None,
) -> None:
    """List tags with owner, category, type, kind and coverage (from tags.catalog)."""
    from rich.console import Console
    from rich.table import Table

    project = _project()
    day, coverage = _coverage(parse_day(as_of) if as_of else None)
    team = owner if owner is None or owner.startswith("team:") else f"team:{owner}"
    rows = []
    for tag in project.tags.values():
        if category and tag.category != category and tag.category_l1 != category:
            continue
        if team and tag.owner != team:
            continue
        rows.append(tag)
    table = Table(title=f"tags (coverage as of {day})" if day else "tags (not built yet)")
    for column in ("name", "title", "owner", "category", "type", "kind", "coverage"):
        table.add_column(column, justify="right" if column == "coverage" else "left")
    for tag in rows:
        cov = coverage.get(tag.name)
        shown = f"{cov[0]:,} ({cov[1]:.1%})" if cov else "-"
        table.add_row(tag.name, tag.title, tag.owner, tag.category, tag.value_type, tag.kind,
                      shown)
    Console(width=200).print(table)
    if not rows:
        typer.echo("no tag matches", err=True)


@tags_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Tag name.")],
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Day to compile the SQL for (default: yesterday).")] = None,
) -> None:
    """Everything about one tag: metadata, dependencies, the compiled SQL."""
    from tags.compile import group_of, group_query, plan_groups, pretty, tag_columns, tag_query

    project = _project()
    if name not in project.tags:
        raise ValidationError(f"no tag named '{name}'", Location(project.root),
                              hint=did_you_mean(name, project.tags))
    tag = project[name]
    day = parse_day(as_of) if as_of else date.today() - timedelta(days=1)
    used_by = [t.name for t in project.derived() if name in t.depends_on]
    lines = [
        f"name:            {tag.name}",
        f"title:           {tag.title}",
        f"description:     {tag.description}",
        f"owner:           {tag.owner}",
        f"category:        {tag.category}",
        f"value_type:      {tag.value_type}",
        f"kind:            {tag.kind}",
        f"default:         {'NULL' if tag.default is None else tag.default}",
        f"definition_hash: {tag.definition_hash}",
        f"file:            {tag.path}",
        f"depends on:      {', '.join(tag.depends_on) or '-'}",
        f"used by:         {', '.join(used_by) or '-'}",
    ]
    if tag.domain.values:
        lines.append(f"values:          {', '.join(tag.domain.values)}")
    if tag.domain.minimum is not None or tag.domain.maximum is not None:
        lines.append(f"range:           [{tag.domain.minimum}, {tag.domain.maximum}]")
    groups = plan_groups(project)
    if tag.kind == "atomic":
        group = group_of(groups, name)
        others = [t for t in group.tags if t != name]
        fused = f"fused with {', '.join(others)}" if others else "alone"
        lines += [f"source:          {tag.source}",
                  f"stored in:       {group.table} ({fused})",
                  "", f"-- the tag's query for {day}", pretty(tag_query(tag, day)),
                  "", f"-- the fused query that runs for its source ({group.key})",
                  pretty(group_query(project, group, day))]
    else:
        lines += ["", "-- expression", tag.expression.sql(dialect="duckdb", pretty=True),
                  "", "-- as computed inside tags.customer_tags",
                  tag_columns(project, groups, day)[name].sql(dialect="duckdb", pretty=True)]
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    """Add the ``kequn tags`` sub-app."""
    app.add_typer(tags_app, name="tags")
