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
    assert kinds == {"tag", "segment:rule", "segment:sql", "segment:file", "segment:combine",
                     "distribution", "history"}
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


def test_distributions_and_segment_history_are_the_same_on_both_engines(parity_run) -> None:
    """Each tag's buckets (top values, quartile ranges) and each segment's size, entered
    and left per day: compared for both days, and not trivially (day 2 moves)."""
    kequn, verdicts = parity_run
    tags = set(kequn.plan.tags.tags)
    for day in (DAY1, DAY2):
        assert {v.name for v in verdicts if v.kind == "distribution" and v.day == day} == tags
        assert {v.name for v in verdicts if v.kind == "history" and v.day == day} == set(
            kequn.plan.segments)
    assert all(v.same for v in verdicts if v.kind in ("distribution", "history"))
    from app.segment_history import read_history

    with kequn.connect_warehouse(read_only=True) as con:
        buckets = con.execute("SELECT count(*), count(DISTINCT name) FROM tags.distribution "
                              "WHERE as_of = ?", [DAY2]).fetchone()
        moved = [(name, row) for name in kequn.plan.segments
                 for row in read_history(con, name) if row.as_of == DAY2]
    assert buckets[1] == len(tags) and buckets[0] > 2 * len(tags)
    assert all(row.previous_day == DAY1 for _, row in moved)
    assert any(row.entered or row.exited for _, row in moved), "day 2 has movement"


def test_a_changed_bucket_in_the_lake_is_reported(parity_run, tmp_path: Path) -> None:
    kequn, _ = parity_run
    from kequn.tables import DISTRIBUTION

    folder = Lake(kequn.settings.lake_dir).day_partition(DISTRIBUTION, DAY1)
    saved = tmp_path / "saved"
    shutil.copytree(folder, saved)
    try:
        table = pq.ParquetDataset(str(folder)).read()
        customers = table.column("customers").to_pylist()
        customers[0] += 1
        changed = table.set_column(table.schema.get_field_index("customers"), "customers",
                                   pa.array(customers, table.schema.field("customers").type))
        shutil.rmtree(folder)
        folder.mkdir()
        pq.write_table(changed, folder / "part-0.parquet")
        verdicts = [v for v in compare_day(kequn, DAY1) if not v.same]
    finally:
        shutil.rmtree(folder)
        shutil.copytree(saved, folder)
    assert [(v.kind, v.name) for v in verdicts] == [
        ("distribution", table.column("name")[0].as_py())]
    assert "buckets differ (duckdb vs spark)" in verdicts[0].render()


def test_uplift_on_spark_reads_every_day_from_the_lake(parity_run, tmp_path: Path) -> None:
    """Rule uplift on engine spark sees each day's tags in the lake, not only the day the
    last rule run staged into the warehouse: the same numbers as on DuckDB."""
    from typer.testing import CliRunner

    from app.engines import stage_tags_from_lake
    from cli.main import app

    kequn, _ = parity_run
    data = tmp_path / "data"
    shutil.copytree(kequn.settings.data_dir, data)
    root = tmp_path / "sql"
    shutil.copytree(REPO_ROOT / "sql", root)
    (root / "rules" / "everyone.sql").write_text(
        "RULE (name everyone, owner 'team:x', trigger schedule, holdout 30%,\n"
        "      templates (t 'hello {customer_id}'));\n"
        "TRUE -> touch app_message t at event +1d 11:00\n")
    env = {"KEQUN_LAKE_DIR": str(data / "lake"), "KEQUN_DATA_DIR": str(data)}
    base = ["--warehouse", str(data / "warehouse.duckdb"), "--serving",
            f"sqlite:///{data / 'serving.sqlite'}", "--project", str(root)]

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, [*base, *args], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    for day in (DAY1, DAY2):
        cli("--engine", "duckdb", "rules", "run", "everyone", "--as-of", day.isoformat())
    uplift = ("rules", "uplift", "everyone", "--from", DAY1.isoformat(), "--to",
              DAY2.isoformat(), "--outcome", "credit_granted", "--horizon", "0")
    on_duckdb = cli("--engine", "duckdb", *uplift)
    assert "acted" in on_duckdb and "rate 0.00%" not in on_duckdb
    # what a rule run on Spark leaves in the warehouse: the wide table of its day only
    stage_tags_from_lake(KequnContext(spark_settings(data, project_dir=root)), DAY2)
    assert cli("--engine", "spark", *uplift) == on_duckdb
    assert cli("--engine", "duckdb", *uplift) != on_duckdb  # the staged day alone is wrong
