"""The command line's one style: rich tables with headers, thousands separators, sparklines.

Every command that prints a listing prints a :func:`table` (a header row, then one row per
item); one that prints a record prints a :func:`record` (a two-column field/value table).
Cells go through :func:`cell`: counts with thousands separators, money with two decimals,
days as ``YYYY-MM-DD``, moments with their time zone, and never a Python repr (``None``,
``True``, a dict or a tuple).

>>> number(7726)
'7,726'
>>> money(Decimal("1234.5"))
'1,234.50'
>>> cell(None), cell(True), cell({"unused": 1200, "used": 3}), cell(("a", "b"))
('-', 'yes', 'unused 1,200, used 3', 'a, b')
>>> sparkline([1, 2, 3, 4, 8])
'▁▂▃▄█'
>>> sparkline([5, 5])
'▄▄'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperArgument, TyperOption

from kequn.days import SHANGHAI

BARS = "▁▂▃▄▅▆▇█"
NONE = "-"


def number(value: int | float | None) -> str:
    """A count with thousands separators (``-`` for none)."""
    if value is None:
        return NONE
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def money(value: Decimal | int | float | str | None) -> str:
    """An amount in yuan with two decimals and thousands separators (``-`` for none)."""
    if value is None:
        return NONE
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"{amount:,.2f}"


def cents(value: int | None) -> str:
    """Whole cents as yuan (see :func:`money`)."""
    return NONE if value is None else money(Decimal(int(value)) / 100)


def moment(value: datetime | None, zone: str = "Asia/Shanghai") -> str:
    """A point in time to the second in ``zone`` (Asia/Shanghai or UTC); a naive value is
    taken as UTC (the serving database's convention)."""
    if value is None:
        return NONE
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return f"{aware.astimezone(UTC if zone == 'UTC' else SHANGHAI):%Y-%m-%d %H:%M:%S}"


def cell(value: object) -> str:
    """Any value as table text: no Python reprs, counts and amounts formatted."""
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return number(value)
    if isinstance(value, float):
        return number(value)
    if isinstance(value, Decimal):
        return money(value)
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items()) or NONE
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return ", ".join(cell(v) for v in items) or NONE
    return str(value)


def sparkline(values: Sequence[int | float]) -> str:
    """One block character per value, scaled between the smallest and the largest."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return BARS[len(BARS) // 2 - 1] * len(values)
    scale = (len(BARS) - 1) / (high - low)
    return "".join(BARS[round((v - low) * scale)] for v in values)


def table(*headers: str, title: str | None = None, numeric: Sequence[str] = ()) -> Table:
    """A table with a header row; columns named in ``numeric`` are right-aligned. The title
    stays on one line (it may be wider than the table)."""
    heading = Text(title, no_wrap=True, overflow="ignore") if title is not None else None
    out = Table(title=heading, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for header in headers:
        out.add_column(header, justify="right" if header in numeric else "left")
    return out


def row(out: Table, *values: object) -> None:
    """Add one row; each value goes through :func:`cell` and prints literally (a ``[`` in a
    reason or a condition is not read as markup)."""
    out.add_row(*(v if isinstance(v, Text) else Text(cell(v)) for v in values))


def record(fields: Mapping[str, object] | Iterable[tuple[str, object]],
           title: str | None = None) -> Table:
    """One record as a two-column field/value table."""
    out = table("field", "value", title=title)
    items = fields.items() if isinstance(fields, Mapping) else fields
    for key, value in items:
        row(out, key, value)
    return out


def console() -> Console:
    """The terminal, or a wide console when piped or captured (rows stay on one line)."""
    out = Console()
    return out if out.is_terminal else Console(width=200)


def display(*renderables: object) -> None:
    """Print tables (or text) on the :func:`console`."""
    out = console()
    for renderable in renderables:
        out.print(Text(renderable) if isinstance(renderable, str) else renderable)


DAY_OPTIONS = frozenset({"as_of", "first", "last", "start", "end_date"})
"""Options that take a business day: their placeholder is ``YYYY-MM-DD``."""


class _PlainArgument(TyperArgument):
    """An argument shown the classic way: ``SEGMENT`` in the usage line and the help."""

    def _label(self) -> str:
        return (self.metavar or self.name or "").upper() + ("..." if self.nargs != 1 else "")

    def _usage_display_name(self) -> str:
        return self._label() if self.required else f"[{self._label()}]"

    def _rich_display_name(self) -> str:
        return self._label()

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None


class _PlainOption(TyperOption):
    """An option's value placeholder in plain words: ``YYYY-MM-DD``, ``N``, ``PATH``,
    ``TEXT`` (never ``<str>``; flags show none)."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        if self.metavar is not None:
            return self.metavar
        desc = self.type_descriptor
        if self.name in DAY_OPTIONS:
            label = "YYYY-MM-DD"
        elif desc.is_path:
            label = "PATH"
        elif desc.annotation in (int, float) or desc.is_ranged:
            label = "N"
        else:
            label = "TEXT"
        return label + ("..." if self.nargs != 1 else "")


def plain_help(command: click.Command) -> None:
    """Show every parameter under ``command`` the classic way (``kequn sync run SEGMENT
    --as-of YYYY-MM-DD``), not as Typer's ``{segment}`` and ``--as-of <str>``."""
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _PlainArgument
        elif type(param) is TyperOption:
            param.__class__ = _PlainOption
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
