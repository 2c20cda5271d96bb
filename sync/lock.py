"""A per-segment lock so that two syncs of one segment never interleave.

The lock lives where the serving database lives and disappears with its holder, so a
killed sync never leaves a stale lock behind:

* SQLite: an exclusive ``flock`` on ``<database>.locks/<segment hash>.lock`` beside the
  file (the kernel releases it when the process dies). Separate opens conflict even
  within one process, so threads are serialised too.
* PostgreSQL: a session advisory lock keyed by a hash of the segment name (released
  by the server when the connection closes).

Waiting polls until ``timeout`` seconds, then raises :class:`ExecutionError`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from kequn.errors import ExecutionError, Location
from serving.db import ServingDB, connection_errors, sqlite_path

DEFAULT_TIMEOUT = 600.0
_POLL = 0.05


def lock_key(segment: str) -> int:
    """A signed 64-bit key for ``segment`` (stable across processes and machines)."""
    digest = hashlib.sha256(f"kequn.sync:{segment}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _busy(segment: str, waited: float) -> ExecutionError:
    return ExecutionError(
        f"another sync of segment '{segment}' is still running (waited {waited:.0f} s)",
        Location(),
        hint="wait for it to finish and run the sync again",
    )


@contextmanager
def _file_lock(path: Path, segment: str, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited >= timeout:
                    raise _busy(segment, waited) from None
                time.sleep(_POLL)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _advisory_lock(db: ServingDB, segment: str, timeout: float) -> Iterator[None]:
    key = lock_key(segment)
    start = time.monotonic()
    while not db.scalar("SELECT pg_try_advisory_lock(?)", (key,)):
        waited = time.monotonic() - start
        if waited >= timeout:
            raise _busy(segment, waited)
        time.sleep(_POLL)
    try:
        yield
    finally:
        # a broken connection has lost its session, and the lock with it
        with suppress(*connection_errors()):
            db.scalar("SELECT pg_advisory_unlock(?)", (key,))


def lock_path(db: ServingDB, segment: str) -> Path | None:
    """The lock file of ``segment`` for a SQLite database (None for ``:memory:``)."""
    path = sqlite_path(db.url)
    if path == ":memory:":
        return None
    digest = hashlib.sha256(segment.encode()).hexdigest()[:16]
    return Path(f"{path}.locks") / f"{digest}.lock"


@contextmanager
def segment_lock(db: ServingDB, segment: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold the sync lock of ``segment`` for the block (waiting up to ``timeout`` s)."""
    if db.dialect == "postgresql":
        with _advisory_lock(db, segment, timeout):
            yield
        return
    path = lock_path(db, segment)
    if path is None:
        yield
        return
    with _file_lock(path, segment, timeout):
        yield
