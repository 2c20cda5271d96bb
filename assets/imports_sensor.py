"""The imports inbox sensor: drop a CSV/XLSX in ``<data>/imports/inbox/`` to (re)build a segment.

File names say which segment: ``<segment>.csv`` (or ``.xlsx``), optionally
``<segment>__<match>.csv`` with match ``id``, ``phone`` or ``phone_hash``. An existing
file segment keeps its own match mode; a new name gets a new ``kind file``
definition in the segments folder (match from the suffix, else ``phone``).

Each tick, for every file in the inbox (oldest first):
- the file is read and checked without the warehouse (encoding, size cap, rows):
  a **bad** file moves to ``rejected/`` with ``<file>.error.txt`` beside it;
- a **duplicate** (same content as the last file processed for that segment) moves
  to ``archive/`` and triggers nothing;
- a **new or changed** file moves to ``archive/`` and requests one run (run key
  ``import:<segment>:<content hash>``) of ``segments/<segment>`` (configured to import
  the archived file; the rows-not-imported report is written beside it) and, when the
  code location has it, ``sync/<segment>``.
A segment created by the sensor has no asset until definitions reload; its run is
kept in the cursor and requested on the first tick that knows the asset.
The sensor never opens the warehouse: the import itself runs in the asset, in the
DuckDB pool.
"""

import json
import os
import re
from datetime import datetime
from pathlib import Path

import dagster as dg

from app.context import KequnContext
from assets.common import DAILY
from kequn.errors import KequnError
from kequn.settings import Settings
from project.edit import ensure_file_segment
from project.segment import MATCH_MODES

SENSOR_NAME = "imports_inbox_sensor"
IMPORT_JOB = "segment_import"
SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx")
_NAME_RE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*?)(?:__(?P<match>id|phone|phone_hash))?$")


def _segment_op_name(name: str) -> str:
    return f"segments__{name}"


def _move(path: Path, folder: Path, prefix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{prefix}-{path.name}"
    os.replace(path, target)
    return target


def _reject(path: Path, rejected: Path, stamp: str, message: str) -> Path:
    target = _move(path, rejected, stamp)
    report = target.with_name(target.name + ".error.txt")
    tmp = report.with_name("." + report.name + ".tmp")
    tmp.write_text(message + "\n", encoding="utf-8")
    os.replace(tmp, report)
    return target


def _load_cursor(text: str | None) -> dict:
    data = json.loads(text) if text else {}
    data.setdefault("processed", {})
    data.setdefault("pending", {})
    return data


def build_imports_sensor(settings: Settings, file_segments: dict[str, str]) -> dg.SensorDefinition:
    """The sensor for ``settings.imports_dir/inbox``; ``file_segments`` maps name -> match."""
    inbox = settings.imports_dir / "inbox"
    archive = settings.imports_dir / "archive"
    rejected = settings.imports_dir / "rejected"

    def run_request(context: dg.SensorEvaluationContext, name: str, archived: str,
                    digest: str) -> dg.RunRequest:
        keys = [dg.AssetKey(["segments", name])]
        sync_key = dg.AssetKey(["sync", name])
        repo = context.repository_def
        if repo is not None and sync_key in repo.asset_graph.get_all_asset_keys():
            keys.append(sync_key)
        return dg.RunRequest(
            run_key=f"import:{name}:{digest}",
            partition_key=DAILY.get_last_partition_key(),
            asset_selection=keys,
            run_config={"ops": {_segment_op_name(name): {"config": {"import_file": archived}}}},
            tags={"kequn/import": name},
        )

    @dg.sensor(
        name=SENSOR_NAME,
        description="Imports CSV/XLSX files dropped in the imports inbox into file segments, "
                    "then materialises and syncs them.",
        minimum_interval_seconds=30,
        job=dg.define_asset_job(
            IMPORT_JOB, selection=dg.AssetSelection.key_prefixes(["segments"], ["sync"]),
            description="Import a dropped file into its file segment, then build and sync it "
            "(the imports sensor narrows each run to that segment)."),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def imports_inbox_sensor(context: dg.SensorEvaluationContext):
        # parsing needs numpy and pyarrow: loaded by a tick, not by every command
        from segments.imports import parse_upload

        cursor = _load_cursor(context.cursor)
        requests: list[dg.RunRequest] = []
        # runs for segments created on an earlier tick, now known to this code version
        for name, item in list(cursor["pending"].items()):
            if name in file_segments:
                requests.append(run_request(context, name, item["path"], item["hash"]))
                del cursor["pending"][name]
        files = sorted((p for p in inbox.glob("*") if p.is_file()
                        and not p.name.startswith(".")), key=lambda p: p.stat().st_mtime) \
            if inbox.is_dir() else []
        for path in files:
            stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
            found = _NAME_RE.match(path.stem)
            if path.suffix.lower() not in SUFFIXES or not found:
                _reject(path, rejected, stamp,
                        f"{path.name}: name the file <segment>.csv or <segment>__<match>.csv "
                        f"(.xlsx too; segment in snake_case; match one of "
                        f"{', '.join(MATCH_MODES)})")
                context.log.warning(f"rejected {path.name}: bad file name")
                continue
            name = found["name"]
            match = file_segments.get(name) or found["match"] or "phone"
            if found["match"] and name in file_segments and found["match"] != match:
                _reject(path, rejected, stamp, f"{path.name}: segment '{name}' matches by "
                        f"{match}, not {found['match']}")
                continue
            try:
                parsed = parse_upload(path, match, max_bytes=settings.import_max_bytes)
                if parsed.keys.num_rows == 0:
                    raise KequnError(f"no valid {match} values in {parsed.rows} rows "
                                     f"(first problem: row {parsed.issues[0].row}: "
                                     f"{parsed.issues[0].reason})")
                if name not in file_segments:
                    ensure_file_segment(settings.segments_dir, name, match)
            except KequnError as exc:
                _reject(path, rejected, stamp, exc.render())
                context.log.warning(f"rejected {path.name}: {exc.message}")
                continue
            digest = parsed.content_hash
            if cursor["processed"].get(name) == digest:
                _move(path, archive, f"{stamp}-duplicate")
                context.log.info(f"{path.name}: same content as the last import of {name}; "
                                 "nothing to do")
                continue
            archived = _move(path, archive, f"{stamp}-{digest[:8]}")
            cursor["processed"][name] = digest
            if name in file_segments:
                requests.append(run_request(context, name, str(archived), digest))
            else:
                cursor["pending"][name] = {"path": str(archived), "hash": digest}
                context.log.info(f"created file segment {name}; its run starts once the "
                                 "definitions reload")
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        if not requests:
            return dg.SkipReason("no new files in the imports inbox")
        return requests

    return imports_inbox_sensor


def build_definitions(kequn: KequnContext) -> dg.Definitions:
    """The imports inbox sensor, knowing the file segments defined now."""
    segments = {**kequn.project.segments, **kequn.project.waiting("segment")}
    file_segments = {name: s.match for name, s in segments.items() if s.kind == "file"}
    return dg.Definitions(sensors=[build_imports_sensor(kequn.settings, file_segments)])
