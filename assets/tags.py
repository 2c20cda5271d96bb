"""Tags as Dagster assets: ``tags/<name>``, ``tags/customer_tags`` and ``tags/catalog``.

- Atomic tags of one source are one subsettable multi-asset step (one fused scan);
  materialising a single tag runs only that tag's column and keeps the others.
- Derived tags, the wide table and the catalog are one step: derived values are
  computed inside the wide SELECT; each derived tag is still its own asset, depending
  on the tags it reads.
- Checks (blocking): one row per customer; values within the declared type/domain;
  coverage neither zero nor moving more than ``max_coverage_change`` (header key,
  default 0.5) from the previous day.
- Each tag's value distribution for the day (top values or quartile buckets, one pass
  over the wide table, :mod:`tags.distribution`) is stored in ``tags.distribution``,
  observed on the tag's asset as a table (``distribution``) and summarised on
  ``tags/catalog``.
- A broken tag file is its own failing asset (:mod:`assets.broken`); the wide table is
  built without it.

Assets are made from the compiled :class:`~plan.tags.TagPlan` (compiled once per
process); no database is opened at load time.
"""


import hashlib
from collections.abc import Iterator
from datetime import date

import dagster as dg
from sqlglot import exp

from app.context import KequnContext
from app.engines import SessionSource, tag_engine
from assets.broken import broken_assets
from assets.common import DAILY, DUCKDB_POOL, as_of_day
from assets.spark import on_engine
from plan.tags import CUSTOMERS_TABLE, WIDE, TagGroup, TagPlan
from project.tag import Tag
from tags import checks
from tags.build import TagStats, measure_tags
from tags.distribution import Bucket

KINDS = {"duckdb", "sql"}
WIDE_KEY = dg.AssetKey(["tags", "customer_tags"])
CATALOG_KEY = dg.AssetKey(["tags", "catalog"])
PLATFORM_OWNER = "team:data_platform"
CHECK_ROWS = "one_row_per_customer"
CHECK_DOMAIN = "values_in_domain"
CHECK_COVERAGE = "coverage_stable"


def tag_key(name: str) -> dg.AssetKey:
    """``tags/<name>``."""
    return dg.AssetKey(["tags", name])


def _raw_key(table: str) -> dg.AssetKey:
    schema, name = table.split(".")
    return dg.AssetKey([schema, name])


def _spec(tag: Tag, deps: list[dg.AssetKey]) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=tag_key(tag.name),
        description=f"{tag.title}: {tag.description}",
        group_name=f"tags_{tag.category_l1}",
        owners=[tag.owner],
        kinds=KINDS,
        code_version=tag.definition_hash,
        deps=deps,
        skippable=True,
        tags={"category_l1": tag.category_l1, "category_l2": tag.category_l2,
              "value_type": tag.value_type, "tag_kind": tag.kind},
        metadata={"value_type": tag.value_type, "category": tag.category,
                  "definition": dg.MetadataValue.path(str(tag.path))},
    )


def _tag_checks(tag: Tag, *, rows: bool) -> list[dg.AssetCheckSpec]:
    key = tag_key(tag.name)
    specs = [
        dg.AssetCheckSpec(CHECK_DOMAIN, asset=key, blocking=True,
                          description=f"Values are {tag.value_type} within the declared domain."),
        dg.AssetCheckSpec(CHECK_COVERAGE, asset=key, blocking=True,
                          description="Coverage is not zero and moved at most "
                          f"{tag.max_coverage_change:.0%} from the previous day."),
    ]
    if rows:
        specs.insert(0, dg.AssetCheckSpec(CHECK_ROWS, asset=key, blocking=True,
                                          description="At most one row per customer."))
    return specs


def _metadata(stats: TagStats, day: date) -> dict[str, object]:
    return {
        "business_day": day.isoformat(),
        "dagster/row_count": stats.rows,
        "coverage": stats.coverage,
        "coverage_ratio": dg.MetadataValue.float(round(stats.coverage_ratio, 6)),
        "customers": stats.customers,
        "sql": dg.MetadataValue.md(f"```sql\n{stats.sql}\n```"),
    }


def distribution_table(buckets: list[Bucket], customers: int) -> dg.TableMetadataValue:
    """A tag's distribution as a UI table: value (or range), customers, share."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"value": b.bucket, "customers": b.customers,
                                 "share": round(b.customers / customers, 4) if customers else 0.0})
                 for b in buckets],
        schema=dg.TableSchema(columns=[
            dg.TableColumn("value", "string"), dg.TableColumn("customers", "int"),
            dg.TableColumn("share", "float")]))


def _counts(stats: TagStats | None) -> tuple[int, int] | None:
    """(rows, distinct customers) of the day counted by a statistics scan, if there was one."""
    return (stats.relation_rows, stats.relation_customers) if stats and stats.sql else None


def _bad(stats: TagStats | None) -> int | None:
    """Out-of-domain values counted by a statistics scan (None: count them in the check)."""
    return stats.out_of_domain if stats and stats.sql else None


def _check_result(key: dg.AssetKey, name: str,
                  outcome: checks.CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key, check_name=name, passed=outcome.passed,
        description=outcome.description,
        metadata={k: v for k, v in outcome.metadata.items() if v is not None},
        severity=dg.AssetCheckSeverity.ERROR,
    )


def _selected(context: dg.AssetExecutionContext, key: dg.AssetKey, name: str) -> bool:
    return dg.AssetCheckKey(key, name) in context.selected_asset_check_keys


def _group_asset(plan: TagPlan, group: TagGroup, *, spark: bool = False) -> dg.AssetsDefinition:
    members = [plan.tags[n] for n in group.tags]
    specs = [_spec(t, [_raw_key(table) for table in t.tables]) for t in members]
    check_specs = [c for t in members for c in _tag_checks(t, rows=True)]
    source = ", ".join(group.tables)

    decorate = dg.multi_asset(
        name=f"tags_{group.key}",
        specs=specs,
        check_specs=check_specs,
        can_subset=True,
        partitions_def=DAILY,
        pool=DUCKDB_POOL,
        description=f"Atomic tags over {source}: one fused query, one scan.",
    )

    def _build(context: dg.AssetExecutionContext, kequn: KequnContext, session: SessionSource
               | None) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        day = as_of_day(context)
        names = [t.name for t in members if tag_key(t.name) in context.selected_asset_keys]
        checked = [t.name for t in members
                   if any(_selected(context, tag_key(t.name), c)
                          for c in (CHECK_ROWS, CHECK_DOMAIN, CHECK_COVERAGE))]
        relation = plan.relation(group)
        with tag_engine(kequn, session).open() as engine:
            con = engine.con  # the warehouse, or (engine spark) the day's lake rows
            stats = engine.build_tags(plan, day, names) if names else {}
            unbuilt = [n for n in checked if n not in stats]
            if unbuilt:  # checks selected without their asset: check what is stored
                stats.update(measure_tags(con, plan, day, unbuilt))
            results = []
            # the checks' counts come from the statistics scan of the build (or measure)
            counted = next((s for s in stats.values() if s.sql), None)
            rows_outcome = checks.one_row_per_customer(
                con, relation, day, counts=_counts(counted))
            for name in checked:
                key, tag = tag_key(name), plan.tags[name]
                if _selected(context, key, CHECK_ROWS):
                    results.append(_check_result(key, CHECK_ROWS, rows_outcome))
                if _selected(context, key, CHECK_DOMAIN):
                    results.append(_check_result(key, CHECK_DOMAIN, checks.values_in_domain(
                        con, relation, tag, day, out_of_domain=_bad(stats.get(name)))))
                if _selected(context, key, CHECK_COVERAGE):
                    s = stats[name]
                    results.append(_check_result(key, CHECK_COVERAGE, checks.coverage_stable(
                        con, tag, day, s.coverage, s.coverage_ratio)))
        for name in names:
            yield dg.MaterializeResult(asset_key=tag_key(name),
                                       metadata=_metadata(stats[name], day))
        yield from results

    return decorate(on_engine(_build, spark=spark))


def _wide_asset(plan: TagPlan, *, spark: bool = False) -> dg.AssetsDefinition:
    derived = [t for t in plan.tags.values() if t.kind == "derived"]
    specs = [_spec(t, [tag_key(d) for d in t.depends_on]) for t in derived]
    all_keys = [tag_key(n) for n in plan.tags]
    specs.append(dg.AssetSpec(
        key=WIDE_KEY, group_name="tags", owners=[PLATFORM_OWNER], kinds=KINDS, deps=[
            *all_keys, _raw_key(CUSTOMERS_TABLE)],
        description="tags.customer_tags: one row per (as_of, customer_id) for every customer "
        "registered by the end of the day, one column per tag.",
        code_version=_combined_hash(plan), metadata={"table": WIDE}))
    specs.append(dg.AssetSpec(
        key=CATALOG_KEY, group_name="tags", owners=[PLATFORM_OWNER], kinds=KINDS,
        deps=[WIDE_KEY], description="tags.catalog: one row per (as_of, tag) with its "
        "metadata, coverage and definition hash.", metadata={"table": "tags.catalog"}))
    check_specs = [dg.AssetCheckSpec(CHECK_ROWS, asset=WIDE_KEY, blocking=True,
                                     description="Exactly one row per registered customer.")]
    check_specs += [c for t in derived for c in _tag_checks(t, rows=False)]

    decorate = dg.multi_asset(
        name="tags_customer_tags",
        specs=specs,
        check_specs=check_specs,
        partitions_def=DAILY,
        pool=DUCKDB_POOL,
        description="Derived tags, the wide table tags.customer_tags and tags.catalog.",
    )

    def _build(context: dg.AssetExecutionContext, kequn: KequnContext, session: SessionSource
               | None) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        day = as_of_day(context)
        wide = exp.to_table(WIDE)
        with tag_engine(kequn, session).open() as engine:
            con = engine.con
            result = engine.build_customer_tags(plan, day)
            if result.missing:
                context.log.warning(
                    f"no stored rows for {day} behind tags {', '.join(result.missing)}: "
                    "materialise their source assets for this day first")
            if plan.broken:
                context.log.warning(f"tags with a broken definition, not built for {day}: "
                                    f"{', '.join(plan.broken)}")
            # the build's own scan (DuckDB), else one pass over the day (Spark: also the lake)
            distributions = engine.record_distributions(plan.built, day, result.distributions)
            counted = next(iter(result.tags.values()), None)
            results = [_check_result(WIDE_KEY, CHECK_ROWS, checks.one_row_per_customer(
                con, wide, day, every_customer=True, counts=_counts(counted)))]
            for tag in derived:
                key, s = tag_key(tag.name), result.tags[tag.name]
                results.append(_check_result(key, CHECK_DOMAIN, checks.values_in_domain(
                    con, wide, tag, day, out_of_domain=_bad(s))))
                results.append(_check_result(key, CHECK_COVERAGE, checks.coverage_stable(
                    con, tag, day, s.coverage, s.coverage_ratio)))
        for tag in derived:
            yield dg.MaterializeResult(asset_key=tag_key(tag.name),
                                       metadata=_metadata(result.tags[tag.name], day))
        yield dg.MaterializeResult(asset_key=WIDE_KEY, metadata={
            "business_day": day.isoformat(),
            "dagster/row_count": result.rows, "columns": len(plan.tags),
            "tags_without_rows_for_day": ", ".join(result.missing) or "none",
            "broken_tags_not_built": ", ".join(plan.broken) or "none",
            "sql": dg.MetadataValue.md(f"```sql\n{result.sql}\n```")})
        for name, buckets in sorted(distributions.items()):
            context.log_event(dg.AssetObservation(
                asset_key=tag_key(name), partition=day.isoformat(), metadata={
                    "business_day": day.isoformat(),
                    "distribution": distribution_table(buckets, result.rows)}))
        yield dg.MaterializeResult(asset_key=CATALOG_KEY, metadata={
            "business_day": day.isoformat(),
            "dagster/row_count": result.catalog_rows,
            "distribution": dg.MetadataValue.table(
                records=[dg.TableRecord({"tag": name, "value": b.bucket,
                                         "customers": b.customers})
                         for name, buckets in sorted(distributions.items()) for b in buckets],
                schema=dg.TableSchema(columns=[
                    dg.TableColumn("tag", "string"), dg.TableColumn("value", "string"),
                    dg.TableColumn("customers", "int")]))})
        yield from results

    return decorate(on_engine(_build, spark=spark))


def _combined_hash(plan: TagPlan) -> str:
    joined = ",".join(f"{t.name}={t.definition_hash}" for t in plan.tags.values())
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def tag_assets(plan: TagPlan, *, spark: bool = False) -> list[dg.AssetsDefinition]:
    """Every tag asset of ``plan``: one multi-asset per source group, plus the wide step
    (``spark``: they need the ``spark`` resource, engine spark)."""
    return [*(_group_asset(plan, g, spark=spark) for g in plan.groups),
            _wide_asset(plan, spark=spark)]


def build_definitions(kequn: KequnContext) -> dg.Definitions:
    """The tag assets and checks of the project's compiled plan, and its broken tags."""
    plan = kequn.plan.tags
    broken = list(kequn.project.broken_of("tag").values())
    if not plan.tags and not broken:
        return dg.Definitions()
    spark = kequn.settings.engine == "spark"
    return dg.Definitions(assets=[*tag_assets(plan, spark=spark), *broken_assets(broken)])
