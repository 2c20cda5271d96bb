"""Sharing (分享): edit a definition's ``shared_with`` teams in place, atomically.

Sharing lives in the definition file, beside ``owner``, because it is part of the
segment's reviewed, versioned definition: it changes the asset's code_version and
shows in Dagster and in code review. (Favourites, which are personal state, live in
the warehouse instead.) The edit touches only the ``shared_with`` value, re-parses the
result to prove it still loads, and replaces the file with an atomic rename.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlglot.tokens import Token, Tokenizer, TokenType

from kequn.errors import ValidationError
from segments.load import OWNER_RE, read_segment
from segments.model import Segment


def _header_fields(text: str) -> dict[str, tuple[int, int]]:
    """``key -> (value start, value end)`` character spans of the header's top-level fields."""
    tokens: list[Token] = Tokenizer().tokenize(text)
    spans: dict[str, tuple[int, int]] = {}
    i, depth = 2, 1
    while i < len(tokens) and depth > 0:
        token = tokens[i]
        if token.token_type == TokenType.R_PAREN:
            break
        if token.token_type == TokenType.COMMA:
            i += 1
            continue
        key = token.text.lower()
        i += 1
        start = tokens[i].start
        end = tokens[i].end
        if tokens[i].token_type == TokenType.L_PAREN:
            level = 0
            while i < len(tokens):
                if tokens[i].token_type == TokenType.L_PAREN:
                    level += 1
                elif tokens[i].token_type == TokenType.R_PAREN:
                    level -= 1
                    if level == 0:
                        end = tokens[i].end
                        i += 1
                        break
                i += 1
        else:
            while i < len(tokens) and tokens[i].token_type not in (TokenType.COMMA,
                                                                    TokenType.R_PAREN):
                end = tokens[i].end
                i += 1
        spans[key] = (start, end + 1)
    return spans


def set_shared_with(segment: Segment, teams: list[str]) -> Path:
    """Rewrite ``segment``'s file so that ``shared_with`` lists exactly ``teams``."""
    for team in teams:
        if not OWNER_RE.match(team):
            raise ValidationError(f"team '{team}' must look like 'team:<dept>'")
    path = segment.path
    text = path.read_text(encoding="utf-8")
    spans = _header_fields(text)
    value = f"({', '.join(teams)})"
    if "shared_with" in spans:
        start, end = spans["shared_with"]
        new_text = text[:start] + value + text[end:]
    else:
        _, end = spans["owner"]
        new_text = text[:end] + f",\n  shared_with {value}" + text[end:]
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    try:
        reread = read_segment(tmp)
        if sorted(reread.shared_with) != sorted(teams):
            raise ValidationError("the edited definition did not keep the teams; file left "
                                  "unchanged", segment.definition.location("shared_with"))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def share(segment: Segment, team: str, *, remove: bool = False) -> list[str]:
    """Add (or remove) ``team`` in ``shared_with``; returns the new list (file rewritten)."""
    teams = list(segment.shared_with)
    if remove:
        teams = [t for t in teams if t != team]
    elif team not in teams:
        teams.append(team)
    if teams != segment.shared_with:
        set_shared_with(segment, teams)
    return teams
