"""One error type per stage, each naming the file, line and column of the problem.

Every user-facing error in kequn is a :class:`KequnError`. It renders as
``path:line:col: message`` followed by the offending source line and a caret, so
that a SQL author can jump straight to the spot. Several errors are collected into
a :class:`KequnErrors` and raised together (collect, then raise).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """A place in a source file: 1-based line and column; both 0 when unknown."""

    path: Path | None = None
    line: int = 0
    col: int = 0
    source: str | None = None

    def prefix(self) -> str:
        """``path:line:col`` (or as much of it as is known)."""
        parts = [str(self.path) if self.path else "<input>"]
        if self.line:
            parts.append(str(self.line))
            if self.col:
                parts.append(str(self.col))
        return ":".join(parts)

    def excerpt(self) -> str:
        """The source line at this location with a caret under the column, or ''."""
        if not self.source or not self.line:
            return ""
        lines = self.source.splitlines()
        if self.line > len(lines):
            return ""
        text = lines[self.line - 1]
        caret = " " * max(self.col - 1, 0) + "^"
        return f"    {text}\n    {caret}"


class KequnError(Exception):
    """A problem the user can fix, located in a file (or a row of an uploaded file)."""

    stage = "error"

    def __init__(self, message: str, location: Location | None = None, *, hint: str = ""):
        self.message = message
        self.location = location or Location()
        self.hint = hint
        super().__init__(self.render())

    @property
    def path(self) -> Path | None:
        return self.location.path

    @property
    def line(self) -> int:
        return self.location.line

    @property
    def col(self) -> int:
        return self.location.col

    def headline(self) -> str:
        """``path:line:col: message`` on one line (plus the hint, if any)."""
        has_place = self.location.path is not None or self.location.line
        text = f"{self.location.prefix()}: {self.message}" if has_place else self.message
        return f"{text} ({self.hint})" if self.hint else text

    def render(self) -> str:
        """The headline followed by the highlighted source line, when known."""
        excerpt = self.location.excerpt()
        return f"{self.headline()}\n{excerpt}" if excerpt else self.headline()


class ParseError(KequnError):
    """A definition file or SQL text that does not parse."""

    stage = "parse"


class ValidationError(KequnError):
    """A definition that parses but breaks a rule (unknown name, cycle, bad type...)."""

    stage = "validate"


class CompileError(KequnError):
    """A valid definition that cannot be turned into SQL."""

    stage = "compile"


class ExecutionError(KequnError):
    """A query or write that failed while running."""

    stage = "execute"


class ImportFileError(KequnError):
    """An uploaded file that cannot be imported."""

    stage = "import"


MAX_SHOWN = 50
"""How many collected errors a report prints before summarising the rest."""


class KequnErrors(KequnError):
    """Several errors reported together; ``errors`` keeps each one.

    The rendered report shows the first :data:`MAX_SHOWN` and counts the rest.
    """

    def __init__(self, errors: Sequence[KequnError]):
        if not errors:
            raise ValueError("KequnErrors needs at least one error")
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, first.location, hint=first.hint)

    def render(self) -> str:
        count = len(self.errors)
        shown = self.errors[:MAX_SHOWN]
        body = "\n".join(e.render() for e in shown)
        if count > len(shown):
            body += f"\n... and {count - len(shown)} more"
        noun = "problem" if count == 1 else "problems"
        return f"{body}\n{count} {noun} found."


def flatten(errors: Iterable[KequnError]) -> list[KequnError]:
    """Every single error in ``errors``, groups (:class:`KequnErrors`) opened up."""
    flat: list[KequnError] = []
    for error in errors:
        flat.extend(error.errors if isinstance(error, KequnErrors) else [error])
    return flat


def raise_collected(errors: Iterable[KequnError]) -> None:
    """Raise every collected error at once (flattening nested groups); do nothing if none."""
    flat = flatten(errors)
    if flat:
        raise KequnErrors(flat)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A "did you mean 'x'?" hint for a misspelt name, or '' when nothing is close."""
    matches = get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else ""


def location_at(path: Path | None, source: str, offset: int) -> Location:
    """The 1-based line/column of character ``offset`` in ``source``."""
    offset = max(0, min(offset, len(source)))
    line = source.count("\n", 0, offset) + 1
    col = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return Location(path, line, col, source)
