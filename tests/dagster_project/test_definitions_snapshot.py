"""A snapshot of the whole code location: any change to keys, lineage or policy shows as a diff.

Update deliberately with ``pytest tests/dagster_project --snapshot-update`` and review the
diff of ``__snapshots__/test_definitions_snapshot.ambr``.
"""

from __future__ import annotations

import dagster as dg

from app.context import KequnContext
from dagster_project.definitions import build_defs
from kequn.settings import Settings


def _describe(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda s: s.key.to_user_string()):
        node = graph.get(spec.key)
        assets[spec.key.to_user_string()] = {
            "group": spec.group_name,
            "owners": sorted(spec.owners),
            "kinds": sorted(spec.kinds),
            "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
            "partitioned": spec.partitions_def is not None,
            "checks": sorted(
                key.name for key in node.check_keys
            ),
            "pool": node.pools and sorted(node.pools),
        }
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs()
                       if not job.name.startswith("__")),
        "schedules": sorted(
            (s.name, s.cron_schedule, s.execution_timezone, str(s.default_status))
            for s in (defs.resolve_schedule_def(sd.name) for sd in defs.schedules or [])
        ),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def test_code_location_snapshot(snapshot) -> None:
    assert _describe(build_defs(KequnContext(Settings()))) == snapshot
