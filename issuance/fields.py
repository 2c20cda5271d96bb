"""Raw fields of a campaign file, read from YAML or a ``CAMPAIGN (...)`` header.

Both forms yield the same flat ``key → RawField`` mapping: the value as text (or a
list of texts) and where it stands, so validation errors in either form name the
file, line and column of the bad value. YAML positions come from the node marks of
:func:`yaml.compose`; header positions from :mod:`kequn.header`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from kequn.errors import Location, ParseError, ValidationError, did_you_mean
from kequn.header import parse_definition_text

RawValue = str | list[str]

HEADER_SAMPLE = """\
CAMPAIGN (
  name wake_up_30d,
  rules '30 days interest-free for dormant customers',
  type wake_up,
  target_segment wake_up,
  window_start 2026-01-01,
  window_end 2026-03-31,
  interest_free_days 30,
  validity_starts_after_days 0,
  validity_days 30,
  total_stock 100000,
  daily_limit 5000,
  per_customer_limit 1,
);"""


@dataclass(frozen=True)
class RawField:
    """One ``key: value`` of a campaign file and where its key and value stand."""

    key: str
    value: RawValue
    key_location: Location
    value_location: Location


@dataclass(frozen=True)
class RawCampaign:
    """A campaign file read but not yet validated."""

    path: Path
    text: str
    fields: dict[str, RawField]
    start: Location

    def location(self, key: str) -> Location:
        """Where ``key``'s value stands, or the start of the definition if it is absent."""
        item = self.fields.get(key)
        return item.value_location if item else self.start


def read_raw(path: Path, allowed: set[str]) -> RawCampaign:
    """Read ``path`` (``.yaml``/``.yml`` or ``.sql``) into raw fields.

    Unknown keys are errors with a "did you mean" hint; a key given twice is an error.
    Raises :class:`ParseError` / :class:`ValidationError` located at the bad token.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"file is not UTF-8 text ({exc.reason} at byte {exc.start})",
                         Location(path)) from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        return _read_yaml(path, text, allowed)
    return _read_header(path, text, allowed)


def _read_header(path: Path, text: str, allowed: set[str]) -> RawCampaign:
    parsed = parse_definition_text(text, path, {"CAMPAIGN": HEADER_SAMPLE}, {"CAMPAIGN": allowed})
    if not parsed.body_is_empty():
        raise ParseError("a CAMPAIGN file has no SQL body; put the rules text in 'rules'",
                         parsed.body_location)
    fields = {
        key: RawField(key, item.value, item.key_location, item.value_location)
        for key, item in parsed.fields.items()
    }
    return RawCampaign(path, text, fields, parsed.kind_location)


def _mark(path: Path, text: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(path, 1, 1, text)
    return Location(path, mark.line + 1, mark.column + 1, text)


def _read_yaml(path: Path, text: str, allowed: set[str]) -> RawCampaign:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ParseError(f"invalid YAML: {exc.problem}", _mark(path, text, exc.problem_mark)) \
            from exc
    except yaml.YAMLError as exc:
        raise ParseError(f"invalid YAML: {exc}", Location(path, 1, 1, text)) from exc
    if not isinstance(root, yaml.MappingNode):
        where = _mark(path, text, root.start_mark if root is not None else None)
        raise ParseError("a campaign YAML file is a mapping of keys to values, for example:\n"
                         "name: wake_up_30d\ntype: wake_up\n...", where)
    fields: dict[str, RawField] = {}
    for key_node, value_node in root.value:
        key_location = _mark(path, text, key_node.start_mark)
        if not isinstance(key_node, yaml.ScalarNode):
            raise ParseError("expected a key name", key_location)
        key = str(key_node.value)
        if key in fields:
            raise ValidationError(f"'{key}' is given twice", key_location)
        if key not in allowed:
            raise ValidationError(f"unknown key '{key}'", key_location,
                                  hint=did_you_mean(key, allowed))
        fields[key] = RawField(key, _yaml_value(path, text, key, value_node), key_location,
                               _mark(path, text, value_node.start_mark))
    return RawCampaign(path, text, fields, _mark(path, text, root.start_mark))


def _yaml_value(path: Path, text: str, key: str, node: yaml.Node) -> RawValue:
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    if isinstance(node, yaml.SequenceNode):
        items: list[str] = []
        for item in node.value:
            if not isinstance(item, yaml.ScalarNode):
                raise ValidationError(f"'{key}' takes a list of plain values",
                                      _mark(path, text, item.start_mark))
            items.append(str(item.value))
        return items
    raise ValidationError(f"'{key}' takes a value or a list, not a mapping",
                          _mark(path, text, node.start_mark))
