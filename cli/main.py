"""The root ``kequn`` command: global options, error handling, and every area's commands.

Global options build the run's :class:`~app.context.KequnContext` (settings from the
options, then the environment) and hand it to every command through the click context;
nothing is written to ``os.environ``. A :class:`~kequn.errors.KequnError` prints as
``path:line:col: message`` on stderr and exits 1 (with a traceback only under
``--debug``); usage errors exit 2.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import click
import typer
from typer.core import TyperGroup

from app.context import KequnContext
from cli import (
    demo,
    economics,
    generate,
    issuance,
    materialize,
    rules,
    segments,
    spark,
    sync,
    tags,
    trial,
    validate,
)
from cli.common import mark_ends_with_command
from kequn.errors import KequnError
from kequn.settings import Settings

_state = {"debug": False}


class _KequnGroup(TyperGroup):
    """Maps a KequnError raised by any command to its message on stderr and exit 1; help
    shows parameters the classic way (``SEGMENT``, ``--as-of YYYY-MM-DD``)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        from cli.style import plain_help

        plain_help(self)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except KequnError as exc:
            if _state["debug"]:
                raise
            click.echo(exc.render(), err=True)
            ctx.exit(1)


app = typer.Typer(
    name="kequn",
    cls=_KequnGroup,
    help="kequn (客群): tags, segments, syncs and coupons for a consumer-credit lender.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: flags without <bool> placeholders
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    warehouse: Annotated[
        Path | None,
        typer.Option("--warehouse", help="DuckDB warehouse file (env KEQUN_WAREHOUSE)."),
    ] = None,
    serving: Annotated[
        str | None,
        typer.Option("--serving", help="Serving database URL (env KEQUN_SERVING_URL)."),
    ] = None,
    project: Annotated[
        Path | None,
        typer.Option("--project", help="Definitions folder (tags/, segments/...) "
                     "(env KEQUN_PROJECT_DIR)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="Where tags and segments are computed: duckdb or spark "
                     "(env KEQUN_ENGINE)."),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--as", help="Who runs the command: audit log, approvals (env KEQUN_USER)."),
    ] = None,
) -> None:
    """Global options apply to every command."""
    _state["debug"] = debug
    settings = Settings.from_env(warehouse=warehouse, serving_url=serving, project_dir=project,
                                 user=user, engine=_engine_option(engine))
    ctx.obj = KequnContext(settings)


def _engine_option(value: str | None) -> str | None:
    from kequn.settings import ENGINES

    if value is not None and value not in ENGINES:
        raise typer.BadParameter(f"one of {', '.join(ENGINES)}", param_hint="--engine")
    return value


for _area in (generate, tags, materialize, segments, sync, issuance, demo, validate, trial,
              economics, rules, spark):
    _area.register(app)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``kequn`` console script: runs the command, then ends the process
    with its exit status (:func:`exit_now`)."""
    mark_ends_with_command()
    try:
        app(args=argv if argv is not None else sys.argv[1:], prog_name="kequn")
    except SystemExit as done:
        exit_now(done.code)
    exit_now(0)


def exit_now(code: object) -> NoReturn:
    """End the process with ``code`` as :func:`sys.exit` would, once the exit handlers
    (``atexit``: logging, temporary files, thread pools) have run and the standard streams
    are flushed, but without the interpreter's teardown, which only frees memory: 0.45-0.6 s
    after a command that ran Dagster (every connection, file and transaction the command
    opened is closed or committed by then; SQLite and DuckDB keep what was committed)."""
    if code is None or isinstance(code, int):
        status = int(code or 0)
    else:  # sys.exit("message"): the message on stderr, status 1
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to write
            stream.flush()
    os._exit(status)
