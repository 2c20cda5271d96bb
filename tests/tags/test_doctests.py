"""The examples in the tag modules' docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["tags.derived", "tags.load", "tags.compile"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
    assert result.attempted > 0
