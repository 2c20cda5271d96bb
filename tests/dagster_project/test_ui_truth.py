"""What the UI shows is true: asked of a real Dagster web server over GraphQL.

Two business days are built through the command line's runner into this test's
``DAGSTER_HOME``, then ``dagster-webserver`` is started on the code location and asked:
every run belongs to a job the code location defines (no "Pipeline not found"), no
metadata carries a placeholder (-1), every materialisation names its business day (the
partition), partitions start at the configured first day (nothing missing), and each
tag shows its distribution table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from app.context import KequnContext
from dagster_project.runner import dagster_instance, generate_demo_warehouse, materialize_days
from kequn.days import yesterday
from tests.dagster_project.test_webserver import REPO, _free_port, _graphql

DAY = yesterday()  # the partitions run up to yesterday: built days = every partition
FIRST = DAY - timedelta(days=1)

METADATA = """
  label
  __typename
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on TextMetadataEntry { text }
  ... on TableMetadataEntry { table { records } }
"""

QUERY = f"""
{{
  runsOrError {{ ... on Runs {{ results {{ runId jobName status }} }} }}
  repositoriesOrError {{
    ... on RepositoryConnection {{ nodes {{ name jobs {{ name }} }} }}
  }}
  assetNodes {{
    assetKey {{ path }}
    isPartitioned
    partitionStats {{ numMaterialized numPartitions }}
    assetMaterializations(limit: 10) {{ partition metadataEntries {{ {METADATA} }} }}
    assetObservations(limit: 10) {{ partition metadataEntries {{ {METADATA} }} }}
    assetChecksOrError {{
      ... on AssetChecks {{
        checks {{ name executionForLatestMaterialization {{
          evaluation {{ partition metadataEntries {{ {METADATA} }} }} }} }}
      }}
    }}
  }}
}}
"""


def _numbers(entries: list[dict]) -> dict[str, float]:
    out = {}
    for entry in entries:
        for field in ("intValue", "floatValue"):
            if entry.get(field) is not None:
                out[entry["label"]] = entry[field]
    return out


@pytest.mark.slow
def test_the_ui_shows_defined_jobs_real_numbers_and_business_days(
        isolated_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEQUN_FIRST_DAY", FIRST.isoformat())
    kequn = KequnContext()
    instance = dagster_instance(kequn.settings)
    generate_demo_warehouse(customers=2000, seed=5, end_date=DAY, kequn=kequn,
                            instance=instance)
    materialize_days([FIRST, DAY], kequn=kequn, instance=instance)

    port = _free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-m", "dagster_project.definitions"],
        cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        data = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"webserver exited: {process.stderr.read().decode()[-2000:]}")
            try:
                answer = _graphql(port, QUERY)
                if answer.get("data", {}).get("assetNodes"):
                    data = answer["data"]
                    break
            except OSError:
                pass
            time.sleep(1)
        assert data, "the webserver did not answer GraphQL within 180 s"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)

    jobs = {j["name"] for repo in data["repositoriesOrError"]["nodes"] for j in repo["jobs"]}
    runs = data["runsOrError"]["results"]
    assert runs and all(r["status"] == "SUCCESS" for r in runs)
    missing = {r["jobName"] for r in runs} - jobs
    assert not missing, f"runs of jobs the code location does not define: {missing}"
    assert "materialize" in {r["jobName"] for r in runs}

    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    for key, node in nodes.items():
        events = [*node["assetMaterializations"], *node["assetObservations"]]
        checks = (node["assetChecksOrError"] or {}).get("checks") or []
        events += [c["executionForLatestMaterialization"]["evaluation"] for c in checks
                   if c["executionForLatestMaterialization"]
                   and c["executionForLatestMaterialization"]["evaluation"]]
        for event in events:
            placeholders = {k: v for k, v in _numbers(event["metadataEntries"]).items()
                            if v == -1}
            assert not placeholders, f"{key} {event['partition']}: {placeholders}"
        for event in node["assetMaterializations"]:
            if node["isPartitioned"]:
                days = [e["text"] for e in event["metadataEntries"]
                        if e["label"] == "business_day"]
                assert days == [event["partition"]], f"{key}: no business_day"
        if node["isPartitioned"] and not key.startswith(("issuance/", "sync/")):
            stats = node["partitionStats"]
            assert stats["numPartitions"] >= 2 and stats["numMaterialized"] == 2 \
                and stats["numPartitions"] - stats["numMaterialized"] <= 1, (key, stats)

    drawn = nodes["tags/drawn"]
    tables = [e["table"]["records"] for o in drawn["assetMaterializations"]
              for e in o["metadataEntries"] if e["label"] == "distribution"]
    assert tables and any('"true"' in record for record in tables[0])
