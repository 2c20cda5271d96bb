"""The Dagster web server loads the code location and shows tags, segments and schedules."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

QUERY = """
{
  assetNodes { assetKey { path } groupName }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name schedules { name cronSchedule executionTimezone scheduleState { status } } }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_webserver_shows_tag_assets_and_the_daily_schedule(isolated_data: Path) -> None:
    port = _free_port()
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "dagster_project" / "dagster.yaml").read_text())
    webserver = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-m", "dagster_project.definitions"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        data = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"webserver exited: {process.stderr.read().decode()[-2000:]}")
            try:
                data = _graphql(port, QUERY)["data"]
                if data["assetNodes"]:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert data, "the webserver did not answer GraphQL within 120 s"
        keys = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
        assert {"tags/credit_granted", "tags/drawn", "tags/overdue", "tags/overdue_days",
                "tags/customer_tags", "tags/catalog", "raw/customers"} <= keys
        schedules = {
            s["name"]: s
            for repo in data["repositoriesOrError"]["nodes"]
            for s in repo["schedules"]
        }
        daily = schedules["daily_build_schedule"]
        assert daily["cronSchedule"] == "0 2 * * *"
        assert daily["executionTimezone"] == "Asia/Shanghai"
        assert daily["scheduleState"]["status"] == "RUNNING"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
