"""YAML definition files: a flat mapping of keys to values, read as a :class:`DefinitionFile`.

A campaign may be written as YAML instead of a ``CAMPAIGN (...)`` header. Both yield the
same fields (value as text or a list of texts, with where each stands), so one set of
field readers checks either form and every error names the file, line and column. YAML
positions come from the node marks of :func:`yaml.compose`; values are never converted by
YAML (``on`` stays the text ``on``).

>>> from pathlib import Path
>>> d = parse_yaml_header("name: x\\nchannels: [APP, H5]\\n", Path("c.yaml"), "CAMPAIGN")
>>> d.fields["channels"].value, d.location("channels").prefix()
(['APP', 'H5'], 'c.yaml:2:11')
"""

from __future__ import annotations

from pathlib import Path

import yaml

from kequn.errors import Location, ParseError, ValidationError
from kequn.header import DefinitionFile, HeaderField, HeaderValue

YAML_SUFFIXES = (".yaml", ".yml")


def _offset(text: str, mark: yaml.Mark | None) -> int:
    return mark.index if mark is not None else 0


def _mark(path: Path, text: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(path, 1, 1, text)
    return Location(path, mark.line + 1, mark.column + 1, text)


def parse_yaml_header(text: str, path: Path, kind: str) -> DefinitionFile:
    """Read a YAML mapping as the header of a ``kind`` definition (there is no body).

    Raises :class:`ParseError` for invalid YAML or a document that is not a flat mapping,
    and :class:`ValidationError` for a key given twice, each at its line and column.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ParseError(f"invalid YAML: {exc.problem}", _mark(path, text, exc.problem_mark)) \
            from exc
    except yaml.YAMLError as exc:
        raise ParseError(f"invalid YAML: {exc}", Location(path, 1, 1, text)) from exc
    if not isinstance(root, yaml.MappingNode):
        where = _mark(path, text, root.start_mark if root is not None else None)
        raise ParseError(f"a {kind.lower()} YAML file is a mapping of keys to values, for "
                         "example:\nname: wake_up_30d\ntype: wake_up\n...", where)
    fields: dict[str, HeaderField] = {}
    for key_node, value_node in root.value:
        key_location = _mark(path, text, key_node.start_mark)
        if not isinstance(key_node, yaml.ScalarNode):
            raise ParseError("expected a key name", key_location)
        key = str(key_node.value)
        if key in fields:
            raise ValidationError(f"'{key}' is given twice", key_location)
        quoted = isinstance(value_node, yaml.ScalarNode) and value_node.style in ("'", '"')
        fields[key] = HeaderField(
            key, _value(path, text, key, value_node), key_location,
            _mark(path, text, value_node.start_mark), quoted,
            _offset(text, value_node.start_mark), _offset(text, value_node.end_mark))
    return DefinitionFile(path, text, kind, fields, "", _mark(path, text, root.start_mark),
                          Location(path, text.count("\n") + 1, 1, text), form="yaml")


def _value(path: Path, text: str, key: str, node: yaml.Node) -> HeaderValue:
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
