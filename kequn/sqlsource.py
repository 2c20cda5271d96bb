"""Where a piece of SQL stands in its file, for errors that point at ``file:line:col``.

Definition files hold SQL in two places: a body after the header, and expressions inside
header values (``rule 'drawn AND NOT overdue'``). Both are parsed from the *whole file
text with everything before the fragment blanked* (newlines kept, see :func:`padded`), so
the offsets and line/column numbers sqlglot records are the file's own.

>>> from pathlib import Path
>>> text = "TAG (x 1);\\nSELECT 1"
>>> padded(text, text.index("SELECT"))
'          \\nSELECT 1'
>>> import sqlglot
>>> node = sqlglot.parse_one(padded(text, 11), read="duckdb")
>>> node_location(node, Path("t.sql"), text).prefix()
't.sql:2:8'
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlglot import exp

from kequn.errors import Location, location_at


def padded(text: str, start: int, end: int | None = None) -> str:
    """``text[start:end]`` preceded by ``text[:start]`` blanked, so positions are file positions."""
    head = "".join(ch if ch == "\n" else " " for ch in text[:start])
    return head + text[start:end]


def padded_value(text: str, start: int, end: int) -> str:
    """Like :func:`padded` for the inside of a quoted header value, ``text[start:end]``.

    Each doubled quote of the value (an escaped quote) is read as one quote and a blank,
    so the SQL reads as the unescaped value while every token keeps its file position.

    >>> padded_value("r 'c IN (''A'', ''B'')'", 3, 22)
    "   c IN ('A'  , 'B'  )"
    """
    raw = text[start:end]
    out: list[str] = []
    i, inside, pending = 0, False, 0
    while i < len(raw):
        if raw.startswith("''", i):
            if not inside:  # opens a literal: the quote where the pair starts
                out.append("'")
                inside, pending = True, 1
            elif raw.startswith("''", i + 2):  # an escaped quote inside a literal
                out.append("''")
                pending += 2
                i += 4
                continue
            else:  # closes it; the blanks owed follow the literal
                out.append("'" + " " * (pending + 1))
                inside, pending = False, 0
            i += 2
            continue
        out.append(raw[i])
        i += 1
    return padded(text, start, start) + "".join(out)


def node_location(node: exp.Expression, path: Path | None, source: str) -> Location:
    """Where ``node`` starts in ``source`` (the first token sqlglot kept a position for)."""
    best: int | None = None
    for sub in node.walk():
        start = sub.meta.get("start") if sub.meta else None
        if start is not None and (best is None or start < best):
            best = start
    return location_at(path, source, best if best is not None else 0)


def parse_error_location(error: dict, path: Path | None, source: str) -> Location:
    """Where a sqlglot parse error starts (sqlglot reports the end of the bad token).

    >>> parse_error_location({"line": 1, "col": 9, "highlight": "FROM"}, Path("t"), "").col
    6
    """
    line, col = error.get("line") or 1, error.get("col") or 1
    highlight = error.get("highlight") or ""
    if highlight and "\n" not in highlight and col >= len(highlight):
        col = col - len(highlight) + 1
    return Location(path, max(line, 1), max(col, 1), source)


def clean_description(text: str) -> str:
    """A sqlglot parse error description with token reprs shown as their text.

    >>> clean_description("Expected table name but got <Token token_type: TokenType.WHERE, "
    ...                   "text: WHERE, line: 1, col: 5>")
    "Expected table name but got 'WHERE'"
    """
    return re.sub(r"<Token token_type: [^,]*, text: (.*?), line: \d+.*?>", r"'\1'", text)
