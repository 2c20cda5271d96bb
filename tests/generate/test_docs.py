"""The examples in the generator's docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["kequn.generate", "kequn.generate.phones", "kequn.generate.schema",
           "kequn.generate.simulate", "kequn.generate.arrow", "kequn.generate.build"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
