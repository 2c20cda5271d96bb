"""Broken definitions as assets: visible in the UI, failing with their ``file:line:col``.

A definition that does not load (or needs one that does not) keeps its asset key, so a
data engineer sees it where it belongs, red, with the located errors in its description
and metadata. Materialising it fails with the same message; the assets that need it
declare it upstream, so a run skips them with that reason, while everything else builds.
"""


import dagster as dg

from assets.common import DAILY
from project.model import Broken

KEY_PREFIX = {"tag": "tags", "segment": "segments", "campaign": "issuance", "rule": "rules"}
"""The asset-key prefix of each definition kind."""
GROUP = {"tag": "tags", "segment": "segments", "campaign": "issuance", "rule": "rules"}


def definition_key(kind: str, name: str) -> dg.AssetKey:
    """The asset key of definition ``name`` of ``kind`` (``tags/<name>``...)."""
    return dg.AssetKey([KEY_PREFIX[kind], name])


def broken_message(broken: Broken) -> str:
    """What is wrong, one problem per line: ``file:line:col: message`` or what it needs."""
    return f"{broken.kind} '{broken.name}' cannot be built: {broken.reason}"


def broken_asset(broken: Broken) -> dg.AssetsDefinition:
    """The asset of a broken definition: described as broken, failing when materialised."""
    message = broken_message(broken)
    first = message.splitlines()[0]

    @dg.asset(
        key=definition_key(broken.kind, broken.name),
        deps=[definition_key(kind, name) for kind, name in broken.upstream],
        partitions_def=DAILY,
        group_name=GROUP[broken.kind],
        description=f"BROKEN definition {broken.path}: {first}",
        kinds={"sql"},
        tags={"kequn/broken": "true"},
        metadata={
            "definition": dg.MetadataValue.path(str(broken.path)),
            "definition_error": dg.MetadataValue.md(f"```\n{message}\n```"),
        },
    )
    def _broken(context: dg.AssetExecutionContext) -> None:
        raise dg.Failure(description=message,
                         metadata={"definition": dg.MetadataValue.path(str(broken.path))})

    return _broken


def broken_assets(broken: list[Broken]) -> list[dg.AssetsDefinition]:
    """One failing asset per broken definition."""
    return [broken_asset(b) for b in broken]
