"""The command line's one style: rich tables with headers, thousands separators, sparklines.

>>> number(7726)
'7,726'
>>> sparkline([1, 2, 3, 4, 8])
'▁▂▃▄█'
>>> sparkline([5, 5])
'▄▄'
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

BARS = "▁▂▃▄▅▆▇█"


def number(value: int | float | None) -> str:
    """A count with thousands separators (``-`` for none)."""
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


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
    """A table with a header row; columns named in ``numeric`` are right-aligned."""
    out = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for header in headers:
        out.add_column(header, justify="right" if header in numeric else "left")
    return out


def console() -> Console:
    """The terminal, or a wide console when piped or captured (rows stay on one line)."""
    out = Console()
    return out if out.is_terminal else Console(width=200)
