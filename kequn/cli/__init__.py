"""The ``kequn`` command line: thin commands over the library, one module per area.

Each area module (``kequn/cli/<area>.py``) defines ``register(app)`` that adds its
commands or sub-apps. Global options set the warehouse and serving database for the
whole invocation. A :class:`~kequn.errors.KequnError` prints as ``path:line:col:
message`` on stderr and exits 1 (with a traceback only under ``--debug``); usage
errors exit 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from kequn.errors import KequnError

_state = {"debug": False}




class _KequnGroup(TyperGroup):
    """Maps a KequnError raised by any command to its message on stderr and exit 1."""

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
)

@app.callback()
def _global_options(
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
) -> None:
    """Global options apply to every command."""
    if warehouse is not None:
        os.environ["KEQUN_WAREHOUSE"] = str(warehouse)
    if serving is not None:
        os.environ["KEQUN_SERVING_URL"] = serving
    if project is not None:
        os.environ["KEQUN_PROJECT_DIR"] = str(project)
    _state["debug"] = debug


def _register_areas() -> None:
    from kequn.cli import demo, generate, issuance, materialize, segments, sync, tags

    for area in (generate, tags, materialize, segments, sync, issuance, demo):
        area.register(app)


_register_areas()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``kequn`` console script."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="kequn")
