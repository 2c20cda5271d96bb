"""The machine's cores, shared between the warehouse and the steps working beside it.

A run executes a warehouse step (DuckDB, which spreads a query over every core) beside a
step that works elsewhere, such as a campaign's batch issuance in SQLite, which keeps one
core busy. With both on every core, the machine is oversubscribed: DuckDB's threads wait
for each other behind a descheduled one, and the batch shares its core with them. So the
warehouse takes what is left: the machine's cores less one per step working beside it.
The executor says which steps those are (:func:`working_beside_the_warehouse`); the
warehouse connection reads :func:`warehouse_threads` before each statement.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_beside = [0]


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def working_beside_the_warehouse() -> Iterator[None]:
    """Count the block as a step keeping one core busy outside the warehouse, for as long
    as it runs (blocks may nest and run on several threads at once)."""
    with _lock:
        _beside[0] += 1
    try:
        yield
    finally:
        with _lock:
            _beside[0] -= 1


def warehouse_threads() -> int:
    """The threads a warehouse query may use now: the machine's cores less one per step
    working beside the warehouse, and at least one."""
    with _lock:
        beside = _beside[0]
    return max(1, machine_cores() - beside)
