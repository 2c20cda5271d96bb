"""A broken definition breaks only itself: per kind, the code location still loads, the
broken asset fails with its ``file:line:col``, what needs it is skipped, and everything
else builds through Dagster (the 02:00 build of everyone else's segments still runs)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from app.context import KequnContext
from dagster_project.definitions import build_defs
from dagster_project.runner import materialize_days
from generate import generate_warehouse
from kequn.errors import ExecutionError
from kequn.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.slow
DAY = date(2026, 3, 31)

# kind -> (file under sql/, text replaced, replacement, the located error it gives,
#          assets that need it and must be skipped, assets that must still build)
BREAKAGES = {
    "tag": ("tags/loans/drawn.sql", "owner 'team:credit_risk'", "owner 'credit_risk'",
            "tags/loans/drawn.sql:6:9: owner 'credit_risk' is not a team",
            ["tags/granted_not_drawn", "segments/wake_up", "segments/wake_up_campaign",
             "sync/wake_up", "issuance/wake_up_30d"],
            ["tags/credit_granted", "tags/customer_tags", "tags/catalog", "segments/vip_list",
             "segments/overdue_now", "sync/vip_list", "issuance/drawdown_rate_discount"]),
    "segment": ("segments/overdue_now.sql", "overdue AND overdue_days", "overdue AND overdue_dayz",
                "segments/overdue_now.sql:8:21: unknown tag 'overdue_dayz'",
                ["segments/wake_up_campaign"],
                ["tags/customer_tags", "segments/wake_up", "segments/vip_list", "sync/wake_up",
                 "issuance/wake_up_30d"]),
    "campaign": ("campaigns/wake_up_30d.yaml", "type: wake_up", "type: wakeup",
                 "campaigns/wake_up_30d.yaml:8:7: 'type' must be one of wake_up, credit, "
                 "drawdown, not 'wakeup'",
                 [],
                 ["segments/wake_up", "sync/wake_up", "issuance/drawdown_rate_discount"]),
    "rule": ("rules/wake_up_touch.sql", "credit_limit >= 10000", "credit_limt >= 10000",
             "rules/wake_up_touch.sql:18:1: unknown tag 'credit_limt'",
             [],
             ["segments/wake_up", "sync/wake_up", "sync/borrowers",
              "rules/drawdown_repayment_coupon"]),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("broken") / "warehouse.duckdb"
    generate_warehouse(path, customers=1500, seed=3, end_date=DAY)
    return path


def broken_project(root: Path, kind: str) -> Path:
    """A copy of the repository's definitions with one file of ``kind`` broken."""
    shutil.copytree(REPO_ROOT / "sql", root)
    rel, old, new, *_ = BREAKAGES[kind]
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return root


def materialized(instance: dg.DagsterInstance, key: str) -> bool:
    event = instance.get_latest_materialization_event(dg.AssetKey(key.split("/")))
    return event is not None


@pytest.mark.parametrize("kind", sorted(BREAKAGES))
def test_a_broken_file_breaks_only_itself(kind: str, generated: Path, tmp_path: Path) -> None:
    _, _, _, error, skipped, built = BREAKAGES[kind]
    project = broken_project(tmp_path / "sql", kind)
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(generated, warehouse)
    kequn = KequnContext(Settings(project_dir=project, warehouse=warehouse,
                                  data_dir=tmp_path / "data"))
    defs = build_defs(kequn)
    dg.Definitions.validate_loadable(defs)  # the code location loads
    broken_key = {"tag": "tags/drawn", "segment": "segments/overdue_now",
                  "campaign": "issuance/wake_up_30d", "rule": "rules/wake_up_touch"}[kind]
    spec = next(s for s in defs.resolve_all_asset_specs()
                if s.key.to_user_string() == broken_key)
    assert "BROKEN" in (spec.description or "") and error.split(":", 1)[1] in spec.description

    with dg.DagsterInstance.ephemeral() as instance:
        with pytest.raises(ExecutionError) as failure:
            materialize_days([DAY], kequn=kequn, instance=instance)
        message = failure.value.message
        assert error in message.replace(f"{project}/", "")  # the run says what and where
        assert not materialized(instance, broken_key)
        for key in skipped:
            assert not materialized(instance, key), f"{key} needs the broken {kind}"
        for key in built:
            assert materialized(instance, key), f"{key} does not need the broken {kind}"

        # an unrelated selection runs as if nothing were broken
        runs = materialize_days([DAY], select="key:segments/vip_list", kequn=kequn,
                                instance=instance)
        assert runs[0].materialized == ["segments/vip_list"]
