"""Declared fields: what a definition kind accepts in its header, and how each is read.

A kind lists its fields as :class:`Field` specs (key, reader, required, default). One
function, :func:`read_fields`, checks any header against them: unknown keys (with a
"did you mean"), missing required keys, and each value through its reader. Readers turn
a :class:`~kequn.header.HeaderField` into a typed value or raise a
:class:`~kequn.errors.ValidationError` at the value's ``file:line:col``; every problem
is collected, not only the first.

>>> from pathlib import Path
>>> from kequn.header import parse_header
>>> d = parse_header("X (size 12, mode fast);", Path("x.sql"), {"X": "X (...)"})
>>> errors = []
>>> values = read_fields(d, (Field("size", integer(minimum=1)),
...                          Field("mode", choice(("fast", "slow")))), errors)
>>> values["size"], values["mode"], errors
(12, 'fast', [])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from difflib import get_close_matches
from typing import Any

from kequn.days import day_start, local
from kequn.errors import KequnError, ValidationError, did_you_mean
from kequn.header import DefinitionFile, HeaderField
from kequn.names import name_problem, team_problem

Reader = Callable[[HeaderField], Any]


@dataclass(frozen=True)
class Field:
    """One header key a kind accepts: how to read it, whether it must be given, its default."""

    key: str
    read: Reader
    required: bool = False
    default: Any = None
    help: str = ""


class Values(Mapping[str, Any]):
    """The fields read from one header: given values (read successfully) and defaults.

    ``failed`` holds the keys whose value was given but did not read; a kind's builder
    skips the rules that need them (their error is already reported).
    """

    def __init__(self, definition: DefinitionFile, values: dict[str, Any], failed: set[str]):
        self.definition = definition
        self._values = values
        self.failed = failed

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def given(self, key: str) -> bool:
        """Whether the header gave ``key`` (successfully read or not)."""
        return key in self.definition.fields

    def ok(self, *keys: str) -> bool:
        """Whether none of ``keys`` failed to read."""
        return not self.failed.intersection(keys)


def read_fields(definition: DefinitionFile, fields: Sequence[Field],
                errors: list[KequnError]) -> Values:
    """Read ``definition``'s header against ``fields``; append every problem to ``errors``
    (in the order they stand in the file)."""
    kind = definition.kind
    where = f" in the {kind} header" if definition.form == "header" else ""
    owner = f"{kind} header" if definition.form == "header" else f"the {kind.lower()}"
    first_new = len(errors)
    known = {f.key: f for f in fields}
    misspelt: set[str] = set()
    for key, item in definition.fields.items():
        if key not in known:
            close = get_close_matches(key, list(known), n=1, cutoff=0.6)
            misspelt.update(close)
            errors.append(ValidationError(f"unknown key '{key}'{where}",
                                          item.key_location, hint=did_you_mean(key, known)))
    absent = [f.key for f in fields if f.required and f.key not in definition.fields]
    missing = [key for key in absent if key not in misspelt]  # a typo is reported once
    if missing:
        required = ", ".join(f.key for f in fields if f.required)
        errors.append(ValidationError(
            f"{owner} has no {', '.join(repr(k) for k in missing)}",
            definition.kind_location, hint=f"required: {required}"))
    values: dict[str, Any] = {}
    failed: set[str] = set(absent)
    for spec in fields:
        item = definition.fields.get(spec.key)
        if item is None:
            values[spec.key] = spec.default
            continue
        try:
            values[spec.key] = spec.read(item)
        except KequnError as error:
            errors.append(error)
            failed.add(spec.key)
            values[spec.key] = spec.default
    errors[first_new:] = sorted(errors[first_new:], key=lambda e: (e.line, e.col))
    return Values(definition, values, failed)


# -- readers ------------------------------------------------------------------------------

def _fail(item: HeaderField, message: str, hint: str = "") -> ValidationError:
    return ValidationError(message, item.value_location, hint=hint)


def text(item: HeaderField) -> str:
    """One value as text (a list is an error)."""
    if isinstance(item.value, list):
        raise _fail(item, f"'{item.key}' takes one value, not a list")
    return item.value


def items(item: HeaderField) -> list[str]:
    """A list of values (one value becomes a one-item list)."""
    return list(item.value) if isinstance(item.value, list) else [item.value]


def raw(item: HeaderField) -> HeaderField:
    """The field itself, for values parsed later with their position (expressions)."""
    text(item)
    return item


def name(what: str) -> Reader:
    """A snake_case name; ``what`` names the thing in the message (``segment``...)."""
    def read(item: HeaderField) -> str:
        value = text(item)
        problem = name_problem(value)
        if problem:
            raise _fail(item, f"{what} name {problem}")
        return value
    return read


def team(item: HeaderField) -> str:
    """A team, ``team:<department>``."""
    value = text(item)
    problem = team_problem(value)
    if problem:
        raise _fail(item, f"{item.key} {problem}")
    return value


def teams(item: HeaderField) -> list[str]:
    """A list of teams."""
    values = items(item)
    for value in values:
        problem = team_problem(value)
        if problem:
            raise _fail(item, f"{item.key} entry {problem}")
    return values


def choice(options: Iterable[str]) -> Reader:
    """One of ``options``."""
    allowed = tuple(options)

    def read(item: HeaderField) -> str:
        value = text(item)
        if value not in allowed:
            raise _fail(item, f"'{item.key}' must be one of {', '.join(allowed)}, not '{value}'",
                        hint=did_you_mean(value, allowed))
        return value
    return read


def integer(*, minimum: int | None = None, none: bool = False) -> Reader:
    """A whole number (at least ``minimum``); with ``none``, 'none' reads as None."""
    def read(item: HeaderField) -> int | None:
        value = text(item).strip()
        if none and value.lower() == "none":
            return None
        try:
            number = int(value)
        except ValueError:
            raise _fail(item, f"'{item.key}' must be a whole number, not '{value}'") from None
        if minimum is not None and number < minimum:
            raise _fail(item, f"'{item.key}' must be at least {minimum}, not {number}")
        return number
    return read


def decimal(item: HeaderField) -> Decimal:
    """A finite decimal number."""
    value = text(item).strip()
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise _fail(item, f"'{item.key}' must be a number, not '{value}'")
    return number


def ratio(*, none: bool = True) -> Reader:
    """A non-negative ratio, ``0.5`` or ``50%``; 'none'/'off' read as None (no limit)."""
    def read(item: HeaderField) -> float | None:
        value = text(item).strip()
        if none and value.lower() in ("none", "off"):
            return None
        try:
            number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise _fail(item, f"'{item.key}' must be a ratio such as 0.5 or 50%, "
                              f"not '{value}'") from None
        if number < 0 or number != number:
            raise _fail(item, f"'{item.key}' cannot be negative ('{value}')")
        return number
    return read


TRUE_WORDS = ("true", "on", "yes", "1")
FALSE_WORDS = ("false", "off", "no", "0")


def switch(item: HeaderField) -> bool:
    """true/false (also on/off, yes/no, 1/0)."""
    value = text(item).strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise _fail(item, f"'{item.key}' must be true or false, not '{text(item)}'")


def day(item: HeaderField) -> date:
    """A date, ``YYYY-MM-DD``."""
    value = text(item).strip()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(item, f"'{item.key}' must be a date (YYYY-MM-DD), not '{value}'") from None


def moment(*, end: bool = False) -> Reader:
    """A date (a whole day) or a time, as an aware Asia/Shanghai datetime.

    With ``end``, a date means the end of that day (the next day's 00:00).
    """
    def read(item: HeaderField) -> datetime:
        value = text(item).strip()
        try:
            if len(value) == 10:
                start = day_start(date.fromisoformat(value))
                return start + timedelta(days=1) if end else start
            return local(datetime.fromisoformat(value))
        except ValueError:
            raise _fail(item, f"'{item.key}' must be a date (YYYY-MM-DD) or a time "
                              f"(YYYY-MM-DD HH:MM:SS), not '{value}'") from None
    return read
