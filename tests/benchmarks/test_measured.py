"""The benchmarks' child measurement reports the child's own peak memory."""

from __future__ import annotations

import sys

from benchmarks.measured import run_measured


def test_a_child_peak_is_its_own_after_the_parent_used_more() -> None:
    ballast = bytearray(768 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touched, so resident
    del ballast
    small = run_measured([sys.executable, "-c", "print('small')"])
    assert small.returncode == 0
    assert b"small" in small.output
    assert small.max_rss_kib < 256 * 1024  # a bare interpreter, not this process's 768 MiB


def test_a_child_that_uses_memory_is_measured_and_its_failure_reported() -> None:
    big = run_measured([sys.executable, "-c",
                        "import sys; b = bytearray(300 * 2**20); b[::4096] = b'x' * "
                        "len(b[::4096]); sys.stderr.write('no newline'); raise SystemExit(3)"])
    assert big.returncode == 3
    assert b"no newline" in big.output
    assert big.max_rss_kib > 300 * 1024
    assert big.seconds > 0
