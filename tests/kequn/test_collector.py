"""The collector pause around a command's start (kequn.collector)."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from kequn.collector import collection_paused


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_off_inside_and_on_again_after(collector_on: None) -> None:
    with collection_paused(freeze=False):
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_is_on_again_when_the_block_raises(collector_on: None) -> None:
    with pytest.raises(RuntimeError), collection_paused(freeze=False):
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_on: None) -> None:
    gc.disable()
    with collection_paused(freeze=False):
        pass
    assert not gc.isenabled()


def test_without_freeze_nothing_is_kept_from_the_collector(collector_on: None) -> None:
    frozen = gc.get_freeze_count()
    with collection_paused(freeze=False):
        kept = [[] for _ in range(1000)]
    assert gc.get_freeze_count() == frozen
    assert kept


def test_freeze_keeps_what_the_block_built_out_of_later_collections() -> None:
    # in a process of its own: freezing here would keep this test process's garbage
    script = (
        "import gc\n"
        "from kequn.collector import collection_paused\n"
        "with collection_paused(freeze=True):\n"
        "    kept = [[] for _ in range(10_000)]\n"
        "    assert not gc.isenabled()\n"
        "assert gc.isenabled()\n"
        "assert gc.get_freeze_count() >= 10_000, gc.get_freeze_count()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
