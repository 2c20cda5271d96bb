"""Take the README's screenshots of the Dagster UI in a real headless browser.

Usage (after ``make demo``): ``make screenshots`` or
``.venv/bin/python docs/screenshots.py [--out docs/img]``.

Starts ``dagster-webserver`` on a free local port over the code location (the current
``DAGSTER_HOME`` and data), waits until it answers GraphQL, then has headless Chromium
(``/usr/bin/chromium``; Debian: ``apt-get install chromium``) render each page in
:data:`PAGES` to ``<out>/<name>.png``, with a fresh profile and no network beyond the
local server. The server is stopped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = {
    "asset-graph": "/asset-groups",
    "tag-distribution": "/assets/tags/drawn?view=events",
    "segment-size-trend": "/assets/segments/wake_up?view=events",
    "automation": "/automation",
}
"""Screenshot name -> UI path."""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", "--window-size=1600,1000", "--virtual-time-budget=20000"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str) -> bool:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def browser() -> str:
    """The Chromium executable, or an error saying how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no Chromium found: apt-get install chromium (Debian) or set PATH")


def shoot(port: int, out: Path, chromium: str) -> list[Path]:
    """Render every page of :data:`PAGES` from the server on ``port`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    taken = []
    for name, path in PAGES.items():
        target = out / f"{name}.png"
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}",
                            f"--screenshot={target}", f"http://127.0.0.1:{port}{path}"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=180)
        taken.append(target)
        print(f"{target} <- {path}")
    return taken


def main() -> None:
    """Start the web server, take the screenshots, stop the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    chromium = browser()
    port = _free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    server = subprocess.Popen(
        [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-m", "dagster_project.definitions"],
        cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not _graphql(port, "{ version }"):
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("the Dagster web server did not start")
            time.sleep(1)
        _graphql(port, "mutation { setNuxSeen }")  # no "join the community" dialog
        shoot(port, args.out, chromium)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


if __name__ == "__main__":
    main()
