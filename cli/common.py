"""Small helpers shared by the command modules: the run's context, and parsing a day."""

from __future__ import annotations

from datetime import date

import typer

from app.context import KequnContext

_PROCESS = {"ends_with_command": False}


def ends_with_command() -> bool:
    """Whether this process runs one command and then ends (the ``kequn`` console script,
    :func:`cli.main.main`), rather than a host that runs commands in turn (a test)."""
    return _PROCESS["ends_with_command"]


def mark_ends_with_command() -> None:
    """Record that this process ends with the command it runs (see :func:`ends_with_command`)."""
    _PROCESS["ends_with_command"] = True


def kequn_context(ctx: typer.Context) -> KequnContext:
    """The :class:`KequnContext` the root command built for this run."""
    found = ctx.find_object(KequnContext)
    return found if found is not None else KequnContext()


def parse_day(text: str, option: str = "--as-of") -> date:
    """A ``YYYY-MM-DD`` business day, or a usage error naming the option and value."""
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from exc


def parse_context(text: str):  # type: ignore[no-untyped-def]
    """A ``--loan-context`` value as a LoanContext, or a usage error naming the option."""
    from project.scope import ContextError, LoanContext

    try:
        return LoanContext.parse(text)
    except ContextError as exc:
        raise typer.BadParameter(str(exc), param_hint="--loan-context") from None
