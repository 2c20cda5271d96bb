"""Parity: every shipped tag and every segment kind, DuckDB against Spark, two days."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.context import KequnContext
from app.parity import compare_day, run_parity
from kequn.lake import Lake
from kequn.settings import REPO_ROOT
from tests.spark_engine.conftest import DAY1, DAY2, spark_settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]


@pytest.fixture(scope="module")
def parity_run(spark, generated: Path, tmp_path_factory: pytest.TempPathFactory):
    """The shipped project built on both engines for two days, and the verdicts."""
    data = tmp_path_factory.mktemp("parity")
    shutil.copy(generated, data / "warehouse.duckdb")
    kequn = KequnContext(spark_settings(data))
    return kequn, run_parity(kequn, [DAY1, DAY2], spark=spark)


def test_every_shipped_tag_and_segment_kind_is_the_same_on_both_engines(parity_run) -> None:
    kequn, verdicts = parity_run
    different = [v.render() for v in verdicts if not v.same]
    assert different == []
    seen = {(v.kind, v.name, v.day) for v in verdicts}
    for day in (DAY1, DAY2):
        assert {("tag", name, day) for name in kequn.plan.tags.tags} <= seen
    kinds = {v.kind for v in verdicts}
    assert kinds == {"tag", "segment:rule", "segment:sql", "segment:file", "segment:combine"}
    assert all(v.rows > 0 for v in verdicts), "every compared definition has rows"
    assert {v.declared for v in verdicts if v.kind == "tag"} >= {
        "BOOLEAN", "BIGINT", "DECIMAL(18,4)", "VARCHAR", "DATE"}


def test_a_changed_value_or_missing_member_in_the_lake_is_reported(parity_run) -> None:
    kequn, _ = parity_run
    lake = Lake(kequn.settings.lake_dir)
    wide = lake.wide_partition(DAY2)
    table = pq.ParquetDataset(str(wide)).read()
    first = table.column("customer_id")[0].as_py()
    drawn = table.column("drawn").to_pylist()
    drawn[0] = not drawn[0] if drawn[0] is not None else True
    changed = table.set_column(table.schema.get_field_index("drawn"), "drawn",
                               pa.array(drawn, pa.bool_()))
    members = lake.members_partition("wake_up", DAY2)
    ids = pq.ParquetDataset(str(members)).read()
    dropped = ids.column("customer_id")[0].as_py()
    shutil.rmtree(wide)
    wide.mkdir()
    pq.write_table(changed, wide / "part-0.parquet")
    shutil.rmtree(members)
    members.mkdir()
    pq.write_table(ids.slice(1), members / "part-0.parquet")

    verdicts = {(v.kind, v.name): v for v in compare_day(kequn, DAY2)}
    assert verdicts[("tag", "drawn")].differing == 1
    assert verdicts[("tag", "drawn")].sample == [first]
    assert verdicts[("segment:rule", "wake_up")].differing == 1
    assert verdicts[("segment:rule", "wake_up")].sample == [dropped]
    assert "DIFFERENT" in verdicts[("tag", "drawn")].render()
    assert sum(not v.same for v in verdicts.values()) == 2


def test_a_non_portable_definition_differs_and_the_lint_names_it(spark, tmp_path: Path,
                                                                  generated: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "sql" / "tags" / "profile", project / "tags" / "profile")
    (project / "segments").mkdir()
    (project / "tags" / "profile" / "months_registered.sql").write_text(
        "-- Calendar months since registration.\n"
        "TAG (\n  name months_registered,\n  title 'Months',\n  description 'Months.',\n"
        "  owner 'team:growth',\n  category_l1 profile,\n  category_l2 tenure,\n"
        "  value_type integer,\n);\n"
        "SELECT customer_id, date_diff('month', registered_at, $as_of) AS months_registered\n"
        "FROM raw.customers\nWHERE registered_at < $as_of_end\n")
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(generated, data / "warehouse.duckdb")
    kequn = KequnContext(spark_settings(data, project_dir=project))
    from plan.portable import portable_problems

    (problem,) = portable_problems(kequn.project)
    assert problem.headline().startswith(
        f"{project / 'tags' / 'profile' / 'months_registered.sql'}:11:21: not portable to "
        "Spark: date_diff('month', ...) counts month boundaries on DuckDB")
    verdicts = {v.name: v for v in run_parity(kequn, [DAY2], spark=spark)}
    assert not verdicts["months_registered"].same
    assert verdicts["months_registered"].differing > 0
    assert all(v.same for name, v in verdicts.items() if name != "months_registered")
