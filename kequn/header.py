"""Definition files: a ``KIND ( key value, ... );`` header, then an optional SQL body.

A tag or segment file opens with a header such as::

    -- Customers with an approved credit line.
    TAG (
      name credit_granted,
      owner 'team:credit_risk',
      shared_with (team:growth, team:ops),
    );
    SELECT ...

The header is read with sqlglot's tokenizer, so every field keeps its line and column.
Values are strings (quoted or bare, including dotted and ``team:x`` forms), numbers
(kept as text; the caller converts), or parenthesised lists of those. The body keeps
its original position in the file: parse errors in it point at the right line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlglot.errors import TokenError
from sqlglot.tokens import Token, Tokenizer, TokenType

from kequn.errors import Location, ParseError, ValidationError, did_you_mean, location_at

HeaderValue = str | list[str]


@dataclass(frozen=True)
class HeaderField:
    """One ``key value`` pair of a header, with where each part stands."""

    key: str
    value: HeaderValue
    key_location: Location
    value_location: Location
    quoted: bool = False


@dataclass(frozen=True)
class DefinitionFile:
    """A parsed definition file: its kind, header fields and SQL body."""

    path: Path
    text: str
    kind: str
    fields: dict[str, HeaderField]
    body: str
    kind_location: Location
    body_location: Location = field(default_factory=Location)

    def has(self, key: str) -> bool:
        return key in self.fields

    def get(self, key: str, default: HeaderValue | None = None) -> HeaderValue | None:
        item = self.fields.get(key)
        return item.value if item else default

    def location(self, key: str | None = None) -> Location:
        """Where ``key``'s value stands, or the header keyword if absent/None."""
        if key and key in self.fields:
            return self.fields[key].value_location
        return self.kind_location

    def string(self, key: str, *, required: bool = True, default: str = "") -> str:
        """The field as one string; a missing required field or a list is an error."""
        item = self.fields.get(key)
        if item is None:
            if required:
                raise ValidationError(f"{self.kind} header has no '{key}'", self.kind_location)
            return default
        if isinstance(item.value, list):
            raise ValidationError(f"'{key}' takes one value, not a list", item.value_location)
        return item.value

    def strings(self, key: str) -> list[str]:
        """The field as a list of strings (a single value becomes a one-item list)."""
        item = self.fields.get(key)
        if item is None:
            return []
        return list(item.value) if isinstance(item.value, list) else [item.value]

    def body_is_empty(self) -> bool:
        return not self.body.strip().strip(";").strip()


def _blank(text: str, end: int) -> str:
    """``text`` with characters before ``end`` blanked (newlines kept, so positions hold)."""
    head = "".join(ch if ch == "\n" else " " for ch in text[:end])
    return head + text[end:]


def _sample(kind: str, sample: str) -> str:
    return f"a {kind} file starts with a header, for example:\n{sample}"


def parse_definition_text(
    text: str,
    path: Path,
    samples: dict[str, str],
    allowed_keys: dict[str, set[str]] | None = None,
) -> DefinitionFile:
    """Parse ``text`` (the content of ``path``) into a :class:`DefinitionFile`.

    ``samples`` maps each accepted header keyword (``TAG``, ``SEGMENT``...) to an
    example header shown when the file has none. ``allowed_keys`` (per kind) turns
    unknown keys into errors with a "did you mean" hint. Raises :class:`ParseError`
    or :class:`ValidationError` located at the offending token.
    """
    try:
        tokens = Tokenizer().tokenize(text)
    except TokenError as exc:
        raise ParseError(f"cannot tokenize: {exc}", Location(path, 1, 1, text)) from exc

    def loc(token: Token) -> Location:
        return location_at(path, text, token.start)

    kinds = ", ".join(sorted(samples))
    first_sample = next(iter(samples.values()))
    if not tokens or tokens[0].text.upper() not in samples:
        where = loc(tokens[0]) if tokens else Location(path, 1, 1, text)
        found = f"'{tokens[0].text}'" if tokens else "an empty file"
        raise ParseError(
            f"expected a {kinds} header, found {found}; "
            + _sample(next(iter(samples)), first_sample),
            where,
        )
    kind_token = tokens[0]
    kind = kind_token.text.upper()
    if len(tokens) < 2 or tokens[1].token_type != TokenType.L_PAREN:
        raise ParseError(f"expected '(' after {kind}; " + _sample(kind, samples[kind]),
                         loc(tokens[1] if len(tokens) > 1 else kind_token))

    fields: dict[str, HeaderField] = {}
    i = 2
    while True:
        if i >= len(tokens):
            raise ParseError(f"{kind} header is not closed with ')'", loc(tokens[-1]))
        token = tokens[i]
        if token.token_type == TokenType.R_PAREN:
            i += 1
            break
        if token.token_type == TokenType.COMMA:
            i += 1
            continue
        if token.token_type in (TokenType.STRING, TokenType.NUMBER, TokenType.L_PAREN):
            raise ParseError(f"expected a key name, found '{token.text}'", loc(token))
        key_token = token
        key = key_token.text.lower()
        i += 1
        value, quoted, value_start, i = _read_value(tokens, i, text, path, key)
        if key in fields:
            raise ValidationError(f"'{key}' is given twice in the {kind} header", loc(key_token))
        if allowed_keys is not None and key not in allowed_keys.get(kind, set()):
            raise ValidationError(
                f"unknown key '{key}' in the {kind} header",
                loc(key_token),
                hint=did_you_mean(key, allowed_keys.get(kind, set())),
            )
        fields[key] = HeaderField(
            key, value, loc(key_token), location_at(path, text, value_start), quoted
        )

    end = tokens[i - 1].end + 1
    if i < len(tokens) and tokens[i].token_type == TokenType.SEMICOLON:
        end = tokens[i].end + 1
        i += 1
    body = _blank(text, end)
    body_location = loc(tokens[i]) if i < len(tokens) else location_at(path, text, len(text))
    return DefinitionFile(path, text, kind, fields, body, loc(kind_token), body_location)


def _read_value(
    tokens: list[Token], i: int, text: str, path: Path, key: str
) -> tuple[HeaderValue, bool, int, int]:
    """Read one value starting at token ``i``; return (value, quoted, start offset, next i)."""
    if i >= len(tokens) or tokens[i].token_type in (TokenType.COMMA, TokenType.R_PAREN):
        where = tokens[min(i, len(tokens) - 1)]
        raise ParseError(f"'{key}' has no value", location_at(path, text, where.start))
    start = tokens[i].start
    if tokens[i].token_type == TokenType.L_PAREN:
        items: list[str] = []
        i += 1
        while i < len(tokens) and tokens[i].token_type != TokenType.R_PAREN:
            if tokens[i].token_type == TokenType.COMMA:
                i += 1
                continue
            item, _, _, i = _read_scalar(tokens, i, text, stop={TokenType.COMMA, TokenType.R_PAREN})
            items.append(item)
        if i >= len(tokens):
            raise ParseError(f"the list for '{key}' is not closed with ')'",
                             location_at(path, text, start))
        return items, False, start, i + 1
    value, quoted, _, i = _read_scalar(tokens, i, text, stop={TokenType.COMMA, TokenType.R_PAREN})
    return value, quoted, start, i


def _read_scalar(
    tokens: list[Token], i: int, text: str, stop: set[TokenType]
) -> tuple[str, bool, int, int]:
    """Read tokens up to a top-level stop token; a lone string is unquoted."""
    start = tokens[i].start
    if tokens[i].token_type == TokenType.STRING and (
        i + 1 >= len(tokens) or tokens[i + 1].token_type in stop
    ):
        return tokens[i].text, True, start, i + 1
    end = tokens[i].end
    while i < len(tokens) and tokens[i].token_type not in stop:
        end = tokens[i].end
        i += 1
    return text[start : end + 1].strip(), False, start, i


def read_definition_file(
    path: Path, samples: dict[str, str], allowed_keys: dict[str, set[str]] | None = None
) -> DefinitionFile:
    """Read and parse a definition file from disk (UTF-8); see parse_definition_text."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"file is not UTF-8 text ({exc.reason} at byte {exc.start})",
                         Location(path)) from exc
    return parse_definition_text(text, path, samples, allowed_keys)
