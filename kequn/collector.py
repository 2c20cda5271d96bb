"""Python's cyclic garbage collector around a command's start.

Importing Dagster and opening its instance allocate about a million long-lived objects
(modules, classes, functions); while they pile up, the collector runs every few hundred
allocations and re-scans all of them each time the heap grows by a quarter, and again
after the start. ``kequn materialize`` paid about 0.5 s of its start for that on a 2-core
machine (``benchmarks/README.md``), for nothing: those objects live until the process ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused(*, freeze: bool) -> Iterator[None]:
    """Run the block with the cyclic collector off, then turn it on again if it was on,
    whether the block returned or raised.

    ``freeze``: first move every object then alive out of the collector's sight for good
    (``gc.freeze``: later collections never re-scan them; reference counting still frees
    them). Only for a process that ends with its command: garbage cycles alive at that
    moment are then kept until it ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()
