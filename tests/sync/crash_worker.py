"""A sync in its own process, for the crash tests: ``python -m tests.sync.crash_worker``.

Opens the warehouse (:func:`warehouse.db.connect`, read-write, waiting for another
process's lock) and the serving database itself, and runs
:func:`sync.run.sync_segment` with ``max_removed_ratio`` off. With ``--pause-at POINT``
its checkpoint, on reaching POINT, writes ``--flag`` (``"<pid> <point>"``) and sleeps:
until killed, or ``--seconds`` and then the sync goes on.

Prints the result's status as the last line of stdout; exits 0 when the sync is ok,
1 when it was blocked or skipped as older (like ``kequn sync``).

    python -m tests.sync.crash_worker --warehouse W --serving URL --segment vip \\
        --as-of 2024-03-02 [--pause-at mid_apply --flag F [--seconds 1.5]]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from project.sync import SyncSettings
from serving.db import connect as connect_serving
from sync.run import CHECKPOINTS, sync_segment
from warehouse.db import connect as connect_warehouse


def pause_at(point: str, flag: Path, seconds: float) -> Callable[[str], None]:
    """A checkpoint that, at ``point``, writes ``flag`` and sleeps ``seconds`` (inf: until
    the process is killed)."""

    def checkpoint(name: str) -> None:
        if name != point:
            return
        partial = flag.with_name(flag.name + ".partial")
        partial.write_text(f"{os.getpid()} {name}\n")
        os.replace(partial, flag)  # the flag appears whole: the test reads it at once
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)

    return checkpoint


def main(argv: list[str]) -> int:
    """Run one sync as the arguments say; the exit code (0: ok)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--warehouse", required=True, type=Path)
    parser.add_argument("--serving", required=True, help="serving database URL")
    parser.add_argument("--segment", required=True)
    parser.add_argument("--as-of", required=True, type=date.fromisoformat)
    parser.add_argument("--pause-at", choices=CHECKPOINTS)
    parser.add_argument("--flag", type=Path, help="file written on reaching --pause-at")
    parser.add_argument("--seconds", type=float, default=float("inf"),
                        help="how long to pause (default: until killed)")
    args = parser.parse_args(argv)
    if args.pause_at and args.flag is None:
        parser.error("--pause-at needs --flag")
    checkpoint = pause_at(args.pause_at, args.flag, args.seconds) if args.pause_at else None
    con = connect_warehouse(args.warehouse)
    try:
        db = connect_serving(args.serving)
        try:
            result = sync_segment(con, db, args.segment, args.as_of,
                                  SyncSettings(max_removed_ratio=None), checkpoint=checkpoint)
        finally:
            db.close()
    finally:
        con.close()
    print(f"{result.segment} {result.as_of} added {result.added} removed {result.removed}")
    print(result.status, flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
