"""Run every benchmark (``python -m benchmarks.run [area ...]``), one after another."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> None:
    """Run ``benchmarks/bench_<area>.py:main`` for the named areas, or for all of them."""
    areas = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    for area in areas:
        print(f"== {area} ==", flush=True)
        importlib.import_module(f"benchmarks.bench_{area}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
