"""``kequn tags validate|list|show``: thin commands over the project and :mod:`tags`."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from app.context import KequnContext
from cli.common import kequn_context, parse_day
from cli.style import NONE, display, number, record, row, table
from kequn.days import yesterday
from kequn.errors import KequnError
from kequn.names import as_team
from plan.params import day_values
from plan.tags import pretty, tag_query
from project.loader import load_project

tags_app = typer.Typer(help="Customer tags: validate definitions, list them, show one.",
                       no_args_is_help=True)


def _coverage(kequn: KequnContext,
              as_of: date | None) -> tuple[date | None, dict[str, tuple[int, float]]]:
    """Coverage per tag from tags.catalog (the given day, else the latest); empty if unbuilt
    or while another process writes the warehouse (listing never waits for it)."""
    from tags.catalog import latest_day, read_coverage
    from warehouse.db import connect

    path = kequn.settings.warehouse
    if not path.exists():
        return as_of, {}
    try:
        con = connect(path, read_only=True, wait_s=0)
    except KequnError:
        return as_of, {}
    with con:
        day = as_of or latest_day(con)
        return day, (read_coverage(con, day) if day else {})


@tags_app.command("validate")
def validate(
    ctx: typer.Context,
    tags_dir: Annotated[Path | None, typer.Argument(
        help="Tags folder (default: <project>/tags).")] = None,
) -> None:
    """Load and check every tag file; print every problem as file:line:col and exit 1."""
    kequn = kequn_context(ctx)
    project = kequn.project if tags_dir is None else load_project(
        kequn.settings.project_dir, folders={"tag": tags_dir})
    project.raise_problems("tag")
    atomic, derived = len(project.atomic_tags()), len(project.derived_tags())
    typer.echo(f"{number(atomic + derived)} tags OK ({number(atomic)} atomic, "
               f"{number(derived)} derived) "
               f"in {tags_dir or kequn.settings.tags_dir}")


@tags_app.command("list")
def list_tags(
    ctx: typer.Context,
    category: Annotated[str | None, typer.Option(
        "--category", help="Only this category: L1 or L1/L2.")] = None,
    owner: Annotated[str | None, typer.Option(
        "--owner", help="Only tags owned by this team (credit_risk or team:credit_risk).")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Coverage of this day (default: the latest built day).")] = None,
) -> None:
    """List tags with owner, category, type, kind and coverage (from tags.catalog)."""
    kequn = kequn_context(ctx)
    project = kequn.project
    day, coverage = _coverage(kequn, parse_day(as_of) if as_of else None)
    team = as_team(owner) if owner is not None else None
    rows = []
    for tag in project.tags.values():
        if category and tag.category != category and tag.category_l1 != category:
            continue
        if team and tag.owner != team:
            continue
        rows.append(tag)
    out = table("name", "title", "owner", "category", "type", "kind", "coverage",
                title=f"tags (coverage as of business day {day})" if day
                else "tags (not built yet)", numeric=("coverage",))
    for tag in rows:
        cov = coverage.get(tag.name)
        row(out, tag.name, tag.title, tag.owner, tag.category, tag.value_type, tag.kind,
            f"{number(cov[0])} ({cov[1]:.1%})" if cov else NONE)
    display(out)
    if not rows:
        typer.echo("no tag matches", err=True)
    broken = project.broken_of("tag")
    if broken:
        typer.echo(f"({len(broken)} tag(s) with a broken definition: {', '.join(broken)}; "
                   "run 'kequn tags validate')", err=True)


def _literal(value: object) -> str:
    """A tag's default as it reads in SQL: NULL, TRUE, FALSE, 0, 'text'."""
    if value is None or isinstance(value, bool):
        return str(value).upper() if value is not None else "NULL"
    return str(value)


@tags_app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Tag name.")],
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Day whose parameter values to show (default: yesterday).")] = None,
) -> None:
    """Everything about one tag: metadata, dependencies, the compiled SQL."""
    kequn = kequn_context(ctx)
    project, plan = kequn.project, kequn.plan.tags
    tag = project.tag(name)
    day = parse_day(as_of) if as_of else yesterday()
    bound = ", ".join(f"${k} = {v}" for k, v in day_values(day).items())
    used_by = [t.name for t in project.derived_tags() if name in t.depends_on]
    fields: list[tuple[str, object]] = [
        ("name", tag.name), ("title", tag.title), ("description", tag.description),
        ("owner", tag.owner), ("category", tag.category), ("value_type", tag.value_type),
        ("kind", tag.kind), ("default", _literal(tag.default)),
        ("definition_hash", tag.definition_hash), ("file", tag.path),
        ("depends on", tag.depends_on), ("used by", used_by),
    ]
    if tag.domain.values:
        fields.append(("values", tag.domain.values))
    if tag.domain.minimum is not None or tag.domain.maximum is not None:
        fields.append(("range", f"[{tag.domain.minimum}, {tag.domain.maximum}]"))
    fields.append(("parameters", f"{bound} (for business day {day}; bound when the query "
                                 "runs)"))
    sql: list[str] = []
    if tag.kind == "atomic":
        group = plan.group_of(name)
        others = [t for t in group.tags if t != name]
        fused = f"fused with {', '.join(others)}" if others else "alone"
        how = "computed inside its SELECT" if group.inline else "computed by a fused scan"
        fields += [("source", tag.source),
                   ("stored in", f"tags.customer_tags, column {name} ({how}, {fused})")]
        sql += ["-- the tag's query", pretty(tag_query(tag)),
                "", f"-- the fused query that runs for its source ({group.key})",
                pretty(plan.group_query(group))]
    else:
        assert tag.expression is not None
        sql += ["-- expression", tag.expression.sql(dialect="duckdb", pretty=True),
                "", "-- as computed inside tags.customer_tags",
                plan.columns[name].sql(dialect="duckdb", pretty=True)]
    display(record(fields, title=f"tag {tag.name}"))
    typer.echo("\n".join(sql))


def register(app: typer.Typer) -> None:
    """Add the ``kequn tags`` sub-app."""
    app.add_typer(tags_app, name="tags")
