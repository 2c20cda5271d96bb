"""Running an analyst's gated SQL: read-only, in a separate, restricted process.

The query comes from the gate (:func:`project.sql_gate.gate`) and is regenerated from
the checked tree. :func:`run_restricted` executes it in a subprocess that opens the
warehouse read-only with external access and extensions off, memory/thread/temp limits,
``max_execution_time``, and the configuration locked (:func:`prestart` starts that process
ahead of time, with DuckDB and Arrow imported, while other work goes on). Why a subprocess: DuckDB
configuration is per database instance, so the same file cannot be opened twice in one
process with different settings, and a runaway query is killed with its process as a
last resort. The caller must not hold a read-write connection to the warehouse while
this runs (DuckDB allows one writer process per file); the segment build runs the query
before it opens its own connection.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
from sqlglot import exp

from kequn.cores import warehouse_threads
from kequn.errors import ExecutionError, Location
from plan.params import AS_OF

_WORKER = (sys.executable, "-m", "segments.sandbox_worker")
_spare: list[subprocess.Popen[str]] = []
"""A query process started ahead (:func:`prestart`), waiting for its request."""
_spare_lock = threading.Lock()


def _start() -> subprocess.Popen[str]:
    return subprocess.Popen(_WORKER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def prestart() -> None:
    """Start the query process of the next :func:`run_restricted` now: it imports DuckDB
    and Arrow (about 0.3 s) and waits for its request, so the query starts at once. One is
    kept at a time; one left unused ends with this process."""
    with _spare_lock:
        if not _spare:
            _spare.append(_start())


def _worker() -> subprocess.Popen[str]:
    """The process started ahead, if it is still waiting, else a new one."""
    with _spare_lock:
        while _spare:
            proc = _spare.pop()
            if proc.poll() is None:
                return proc
    return _start()


@atexit.register
def _end_spare() -> None:
    """End a process started ahead and never used (an empty request: it exits)."""
    with _spare_lock:
        for proc in _spare:
            try:
                proc.communicate("", timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        _spare.clear()


@dataclass(frozen=True)
class SandboxLimits:
    """What an analyst's query may use: time, memory and threads (from the Settings)."""

    timeout_s: float = 60.0
    memory_limit: str = "2GB"
    threads: int = 2


@dataclass(frozen=True)
class SandboxResult:
    """Distinct customer ids returned by a restricted query, and how long it took."""

    ids: pa.Table
    """One int64 column ``customer_id``, as the query's process wrote it."""
    elapsed_s: float

    @property
    def customer_ids(self) -> list[int]:
        """The ids as Python ints."""
        return self.ids.column(0).to_pylist()


def run_restricted(
    warehouse: Path,
    query: exp.Query,
    as_of: date,
    *,
    limits: SandboxLimits | None = None,
    location: Location | None = None,
) -> SandboxResult:
    """Run a gated query read-only in a restricted subprocess; return its customer ids.

    The process opens ``warehouse`` read-only with external access, extension loading
    and configuration changes disabled, and the given memory/thread limits (fewer threads
    while a step works beside the warehouse, :func:`kequn.cores.warehouse_threads`); DuckDB
    interrupts the query after ``limits.timeout_s`` and the process is killed if it is
    still alive shortly after. Nothing is written anywhere. Errors (including a
    non-integer or NULL-typed result, or the time limit) raise ExecutionError at
    ``location``.
    """
    limits = limits or SandboxLimits()
    timeout_s, memory_limit = limits.timeout_s, limits.memory_limit
    threads = min(limits.threads, warehouse_threads())  # cores a step beside it keeps busy
    sql = query.sql(dialect="duckdb")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kequn-sandbox-") as tmp:
        out = Path(tmp) / "ids.arrow"
        request = {"warehouse": str(warehouse), "sql": sql, "as_of": as_of.isoformat(),
                   "as_of_name": AS_OF,
                   "timeout_ms": int(timeout_s * 1000), "memory_limit": memory_limit,
                   "threads": threads, "out": str(out),
                   "uses_as_of": any(p.name == AS_OF for p in query.find_all(exp.Placeholder))}
        proc = _worker()
        try:
            stdout, stderr = proc.communicate(json.dumps(request), timeout=timeout_s + 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise ExecutionError(f"the query ran longer than {timeout_s:g} s and was killed",
                                 location) from None
        if proc.returncode != 0:
            try:
                message = json.loads(stdout)["error"]
            except (ValueError, KeyError):
                message = (stderr.strip().splitlines() or ["the query process failed"])[-1]
            raise ExecutionError(message, location)
        import pyarrow.ipc as ipc

        with ipc.open_file(out) as reader:
            ids = reader.read_all()
    return SandboxResult(ids=ids, elapsed_s=time.perf_counter() - started)
