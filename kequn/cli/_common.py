"""Small helpers shared by the command modules."""

from __future__ import annotations

from datetime import date

import typer

from kequn.errors import KequnError


def parse_day(text: str, option: str = "--as-of") -> date:
    """A ``YYYY-MM-DD`` business day, or a usage error naming the option and value."""
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from exc


__all__ = ["KequnError", "parse_day"]
