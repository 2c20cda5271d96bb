"""Read the rich tables a command printed (``cli.style``): title, header row, data rows.

A table is a header line followed by a rule of ``─``; its rows run to the next blank line.
Cells are separated by two or more spaces (a cell never holds two spaces in a row, and an
empty cell prints as ``-``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RULE = re.compile(r"^\s*─+\s*$")
GAP = re.compile(r"\s{2,}")


@dataclass
class Printed:
    """One printed table."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def column(self, name: str) -> list[str]:
        """Every row's cell in the column ``name``."""
        at = self.header.index(name)
        return [r[at] for r in self.rows]

    def record(self) -> dict[str, str]:
        """A field/value table as a dict."""
        assert self.header == ["field", "value"], self.header
        return {r[0]: r[1] for r in self.rows}


def cells(line: str) -> list[str]:
    """The cells of one table line."""
    return GAP.split(line.strip())


def tables(out: str) -> list[Printed]:
    """Every table in ``out``, in order."""
    lines = out.splitlines()
    found: list[Printed] = []
    for i, line in enumerate(lines):
        if i == 0 or not RULE.match(line):
            continue
        title = ""
        if i >= 3 and not lines[i - 2].strip() and lines[i - 3].strip():
            title = lines[i - 3].strip()
        printed = Printed(title, cells(lines[i - 1]))
        for body in lines[i + 1:]:
            if not body.strip():
                break
            printed.rows.append(cells(body))
        found.append(printed)
    return found


def table(out: str) -> Printed:
    """The one table in ``out``."""
    found = tables(out)
    assert len(found) == 1, out
    return found[0]
