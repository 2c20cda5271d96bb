"""Definition files: a ``KIND ( key value, ... );`` header, then an optional SQL body.

A tag or segment file opens with a header such as::

    -- Customers with an approved credit line.
    TAG (
      name credit_granted,
      owner 'team:credit_risk',
      shared_with (team:growth, team:ops),
    );
    SELECT ...

The header is read with sqlglot's tokenizer, so every field keeps its line, column and
character span. Values are strings (quoted or bare, including dotted and ``team:x``
forms), numbers (kept as text; the field readers convert), or parenthesised lists of
those. The body keeps its original position in the file (the header is blanked), so parse
errors in it point at the right line. YAML files yield the same :class:`DefinitionFile`
(:mod:`kequn.yaml_header`). Which keys a kind accepts is the project model's business.

>>> from pathlib import Path
>>> d = parse_header("SEGMENT (name a, rule 'x > 1');\\n", Path("a.sql"), {"SEGMENT": "..."})
>>> d.kind, d.fields["rule"].value, d.location("rule").prefix()
('SEGMENT', 'x > 1', 'a.sql:1:23')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlglot.errors import TokenError
from sqlglot.tokens import Token, Tokenizer, TokenType

from kequn.errors import Location, ParseError, ValidationError, location_at

HeaderValue = str | list[str]


@dataclass(frozen=True)
class HeaderField:
    """One ``key value`` pair of a header, with where each part stands.

    ``start``/``end`` are the character span of the value as written (quotes and list
    parentheses included); ``text_offset`` is where the value's own text begins.
    """

    key: str
    value: HeaderValue
    key_location: Location
    value_location: Location
    quoted: bool = False
    start: int = 0
    end: int = 0

    @property
    def text_offset(self) -> int:
        """File offset of the first character of the value's text (inside its quotes)."""
        return self.start + (1 if self.quoted else 0)


@dataclass(frozen=True)
class DefinitionFile:
    """A parsed definition file: its kind, header fields and SQL body."""

    path: Path
    text: str
    kind: str
    fields: dict[str, HeaderField]
    body: str
    """The text after the header, with the header blanked (file positions kept)."""
    kind_location: Location
    body_location: Location = field(default_factory=Location)
    form: str = "header"
    """``header`` (a ``KIND (...)`` header) or ``yaml`` (a YAML mapping)."""

    def location(self, key: str | None = None) -> Location:
        """Where ``key``'s value stands, or the header keyword if absent/None."""
        if key and key in self.fields:
            return self.fields[key].value_location
        return self.kind_location

    def body_is_empty(self) -> bool:
        """Whether nothing but blanks, comments' leftovers and ';' follow the header."""
        return not self.body.strip().strip(";").strip()


def read_text(path: Path) -> str:
    """The UTF-8 text of a definition file, or a located ParseError."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"file is not UTF-8 text ({exc.reason} at byte {exc.start})",
                         Location(path)) from exc
    except OSError as exc:
        raise ParseError(f"cannot read the file: {exc.strerror}", Location(path)) from exc


def _blank(text: str, end: int) -> str:
    """``text`` with characters before ``end`` blanked (newlines kept, so positions hold)."""
    head = "".join(ch if ch == "\n" else " " for ch in text[:end])
    return head + text[end:]


def sample_hint(kind: str, sample: str) -> str:
    """The hint shown with a missing or broken header: an example of one."""
    return f"a {kind} file starts with a header, for example:\n{sample}"


def parse_header(text: str, path: Path, samples: Mapping[str, str]) -> DefinitionFile:
    """Parse ``text`` (the content of ``path``) into a :class:`DefinitionFile`.

    ``samples`` maps each accepted header keyword (``TAG``, ``SEGMENT``...) to an example
    header shown when the file has none. Raises :class:`ParseError` (or
    :class:`ValidationError` for a key given twice) located at the offending token.
    """
    try:
        tokens = Tokenizer().tokenize(text)
    except TokenError as exc:
        raise ParseError(f"cannot tokenize: {exc}", Location(path, 1, 1, text)) from exc

    def loc(token: Token) -> Location:
        return location_at(path, text, token.start)

    kinds = ", ".join(sorted(samples))
    first_kind = next(iter(samples))
    if not tokens or tokens[0].text.upper() not in samples:
        where = loc(tokens[0]) if tokens else Location(path, 1, 1, text)
        found = f"'{tokens[0].text}'" if tokens else "an empty file"
        raise ParseError(f"expected a {kinds} header, found {found}; "
                         + sample_hint(first_kind, samples[first_kind]), where)
    kind_token = tokens[0]
    kind = kind_token.text.upper()
    if len(tokens) < 2 or tokens[1].token_type != TokenType.L_PAREN:
        raise ParseError(f"expected '(' after {kind}; " + sample_hint(kind, samples[kind]),
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
        value, quoted, start, end, i = _read_value(tokens, i + 1, text, path, key)
        if key in fields:
            raise ValidationError(f"'{key}' is given twice in the {kind} header", loc(key_token))
        fields[key] = HeaderField(key, value, loc(key_token), location_at(path, text, start),
                                  quoted, start, end)

    end = tokens[i - 1].end + 1
    if i < len(tokens) and tokens[i].token_type == TokenType.SEMICOLON:
        end = tokens[i].end + 1
        i += 1
    body = _blank(text, end)
    body_location = loc(tokens[i]) if i < len(tokens) else location_at(path, text, len(text))
    return DefinitionFile(path, text, kind, fields, body, loc(kind_token), body_location)


def _read_value(tokens: list[Token], i: int, text: str, path: Path,
                key: str) -> tuple[HeaderValue, bool, int, int, int]:
    """Read one value at token ``i``: (value, quoted, start, end offsets, next i)."""
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
            item, _, _, i = _read_scalar(tokens, i, text)
            items.append(item)
        if i >= len(tokens):
            raise ParseError(f"the list for '{key}' is not closed with ')'",
                             location_at(path, text, start))
        return items, False, start, tokens[i].end + 1, i + 1
    value, quoted, end, i = _read_scalar(tokens, i, text)
    return value, quoted, start, end, i


def _read_scalar(tokens: list[Token], i: int, text: str) -> tuple[str, bool, int, int]:
    """Read tokens up to a top-level ',' or ')': (value, quoted, end offset, next i).

    A lone string token is the unquoted string; anything else is the source text as written.
    """
    stop = (TokenType.COMMA, TokenType.R_PAREN)
    start = tokens[i].start
    if tokens[i].token_type == TokenType.STRING and (
        i + 1 >= len(tokens) or tokens[i + 1].token_type in stop
    ):
        return tokens[i].text, True, _string_end(text, start), i + 1
    end = tokens[i].end
    while i < len(tokens) and tokens[i].token_type not in stop:
        end = tokens[i].end
        i += 1
    return text[start : end + 1].strip(), False, end + 1, i


def _string_end(text: str, start: int) -> int:
    """The offset just after the quoted string that opens at ``start`` ('' escapes a quote)."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(text)
