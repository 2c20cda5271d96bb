"""Tags as Dagster assets: ``tags/<name>``, ``tags/customer_tags`` and ``tags/catalog``.

- Every tag is its own asset, and all of them, the wide table and the catalog are one
  subsettable step: one query computes the day (each source's atomic tags by one fused
  scan, derived tags inside the same SELECT) and writes ``tags.customer_tags`` once.
  Materialising some atomic tags computes only their columns and keeps the others'
  stored values of the day; derived tags are recomputed with every write.
- A tag whose query does not run is left out (its stored values kept), the others are
  built and reported, then the step fails naming the tag's file.
- Checks (blocking: what reads the tags waits for them): one row per customer; values
  within the declared type/domain; coverage neither zero nor moving more than
  ``max_coverage_change`` (header key, default 0.5) from the previous day. Their counts
  come from the one scan of the written day.
- Each tag's value distribution for the day (top values or quartile buckets, same scan,
  :mod:`tags.distribution`) is stored in ``tags.distribution``, shown as a table
  (``distribution``) in the metadata of the tag's materialisation (an observation for a
  tag of the written day outside the selection) and summarised on ``tags/catalog``.
- A broken tag file is its own failing asset (:mod:`assets.broken`); the wide table is
  built without it.

Assets are made from the compiled :class:`~plan.tags.TagPlan` (compiled once per
process); no database is opened at load time.
"""


import hashlib
from collections.abc import Iterable, Iterator
from datetime import date, timedelta

import dagster as dg
from sqlglot import exp

from app.context import KequnContext
from app.engines import DuckDBTags, SessionSource, tag_engine
from assets.broken import broken_assets
from assets.common import DAILY, DUCKDB_POOL, TAG_BUILD, as_of_day
from assets.spark import on_engine
from kequn.errors import ExecutionError
from plan.tags import CUSTOMERS_TABLE, WIDE, TagPlan
from project.tag import Tag
from tags import checks
from tags.build import CustomerTagsResult, TagStats
from tags.catalog import read_coverage
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
    return stats.counts if stats and stats.sql else None


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


def _checks_of(context: dg.AssetExecutionContext, engine: DuckDBTags, plan: TagPlan,
               result: CustomerTagsResult, day: date) -> list[dg.AssetCheckResult]:
    """The selected checks, their counts taken from the build's statistics scan (the wide
    table's column types and the previous day's coverage read once for all)."""
    con, wide = engine.con, exp.to_table(WIDE)
    results = []
    if _selected(context, WIDE_KEY, CHECK_ROWS):
        results.append(_check_result(WIDE_KEY, CHECK_ROWS, checks.one_row_per_customer(
            con, wide, day, every_customer=True, counts=result.counts)))
    types = checks.column_types(con, wide)
    previous = read_coverage(con, day - timedelta(days=1))
    for name, tag in plan.tags.items():
        if name in result.failed:
            continue
        key, s = tag_key(name), result.tags[name]
        group = plan.group_of(name) if tag.kind == "atomic" else None
        # stored in the wide table (DuckDB), or in the group's own table (Spark's mirror)
        relation = plan.relation(group, stored=True) if group and engine.stored_groups \
            else wide
        if group and _selected(context, key, CHECK_ROWS):
            counts, counted = _counts(s), relation
            if counts and counts[0] != counts[1] and not engine.stored_groups:
                # a customer twice in the wide day: count this tag's own rows to name it
                counts, counted = None, plan.relation(group)
            results.append(_check_result(key, CHECK_ROWS, checks.one_row_per_customer(
                con, counted, day, counts=counts)))
        if _selected(context, key, CHECK_DOMAIN):
            results.append(_check_result(key, CHECK_DOMAIN, checks.values_in_domain(
                con, relation, tag, day, out_of_domain=_bad(s),
                types=types if relation is wide else None)))
        if _selected(context, key, CHECK_COVERAGE):
            results.append(_check_result(key, CHECK_COVERAGE, checks.coverage_stable(
                con, tag, day, s.coverage, s.coverage_ratio, previous_day=previous)))
    return results


def _held_back(plan: TagPlan, failed: Iterable[str]) -> set[str]:
    """The failed tags and every derived tag that reads one of them (transitively)."""
    out = set(failed)
    for tag in plan.tags.values():  # dependency order
        if tag.kind == "derived" and out & set(tag.depends_on):
            out.add(tag.name)
    return out


def _tags_asset(plan: TagPlan, *, spark: bool = False) -> dg.AssetsDefinition:
    atomic = [plan.tags[n] for n in plan.atomic]
    derived = [t for t in plan.tags.values() if t.kind == "derived"]
    specs = [_spec(t, [_raw_key(table) for table in t.tables]) for t in atomic]
    specs += [_spec(t, [tag_key(d) for d in t.depends_on]) for t in derived]
    specs.append(dg.AssetSpec(
        key=WIDE_KEY, group_name="tags", owners=[PLATFORM_OWNER], kinds=KINDS,
        deps=[*(tag_key(n) for n in plan.tags), _raw_key(CUSTOMERS_TABLE)],
        skippable=True,
        description="tags.customer_tags: one row per (as_of, customer_id) for every customer "
        "registered by the end of the day, one column per tag.",
        code_version=_combined_hash(plan), metadata={"table": WIDE}))
    specs.append(dg.AssetSpec(
        key=CATALOG_KEY, group_name="tags", owners=[PLATFORM_OWNER], kinds=KINDS,
        deps=[WIDE_KEY], skippable=True, description="tags.catalog: one row per (as_of, tag) "
        "with its metadata, coverage and definition hash.", metadata={"table": "tags.catalog"}))
    check_specs = [dg.AssetCheckSpec(CHECK_ROWS, asset=WIDE_KEY, blocking=True,
                                     description="Exactly one row per registered customer.")]
    check_specs += [c for t in atomic for c in _tag_checks(t, rows=True)]
    check_specs += [c for t in derived for c in _tag_checks(t, rows=False)]

    decorate = dg.multi_asset(
        name="tags_customer_tags",
        specs=specs,
        check_specs=check_specs,
        can_subset=True,
        partitions_def=DAILY,
        pool=DUCKDB_POOL,
        op_tags=TAG_BUILD,
        description="Every tag of the day in one query (each source's atomic tags by one "
        "fused scan, derived tags in the same SELECT), written once to tags.customer_tags; "
        "the catalog and the checks from one scan of what was written.",
    )

    def _build(context: dg.AssetExecutionContext, kequn: KequnContext, session: SessionSource
               | None) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        day = as_of_day(context)
        chosen = context.selected_asset_keys
        compute = [t.name for t in atomic if tag_key(t.name) in chosen]
        with tag_engine(kequn, session).open() as engine:
            result = engine.build_day(plan, day, compute)
            if result.missing:
                context.log.warning(
                    f"no stored values for {day} of tags {', '.join(result.missing)} (the "
                    "day was never built): they read as their default; materialise them")
            if plan.broken:
                context.log.warning(f"tags with a broken definition, not built for {day}: "
                                    f"{', '.join(plan.broken)}")
            # the build's own scan (DuckDB), else one pass over the day (Spark: also the lake)
            distributions = engine.record_distributions(plan.built, day, result.distributions)
            results = _checks_of(context, engine, plan, result, day)
        held = _held_back(plan, result.failed)
        materialized = [n for n in plan.tags if tag_key(n) in chosen and n not in held]
        for name in materialized:
            metadata = _metadata(result.tags[name], day)
            if name in distributions:
                metadata["distribution"] = distribution_table(distributions[name], result.rows)
            yield dg.MaterializeResult(asset_key=tag_key(name), metadata=metadata)
        if WIDE_KEY in chosen:
            yield dg.MaterializeResult(asset_key=WIDE_KEY, metadata={
                "business_day": day.isoformat(),
                "dagster/row_count": result.rows, "columns": len(plan.tags),
                "computed_from_sources": len(result.computed),
                "tags_without_values_for_day": ", ".join(result.missing) or "none",
                "tags_failed_kept_stored_values": ", ".join(result.failed) or "none",
                "broken_tags_not_built": ", ".join(plan.broken) or "none",
                "sql": dg.MetadataValue.md(f"```sql\n{result.sql}\n```")})
        # a tag of the written day that this step does not materialise (outside the
        # selection) shows its day's distribution as an observation
        for name, buckets in sorted(distributions.items()):
            if name in materialized:
                continue
            context.log_event(dg.AssetObservation(
                asset_key=tag_key(name), partition=day.isoformat(), metadata={
                    "business_day": day.isoformat(),
                    "distribution": distribution_table(buckets, result.rows)}))
        if CATALOG_KEY in chosen:
            yield dg.MaterializeResult(asset_key=CATALOG_KEY, metadata={
                "business_day": day.isoformat(),
                "dagster/row_count": result.catalog_rows,
                "distribution": dg.MetadataValue.table(
                    records=[dg.TableRecord({"tag": name, "value": b.bucket,
                                             "customers": b.customers})
                             for name, buckets in sorted(distributions.items())
                             for b in buckets],
                    schema=dg.TableSchema(columns=[
                        dg.TableColumn("tag", "string"), dg.TableColumn("value", "string"),
                        dg.TableColumn("customers", "int")]))})
        yield from results
        if result.failed:
            first = next(iter(result.failed.values()))
            raise first if len(result.failed) == 1 else ExecutionError(
                "; ".join(e.message for e in result.failed.values()), first.location)

    return decorate(on_engine(_build, spark=spark))


def _combined_hash(plan: TagPlan) -> str:
    joined = ",".join(f"{t.name}={t.definition_hash}" for t in plan.tags.values())
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def tag_assets(plan: TagPlan, *, spark: bool = False) -> list[dg.AssetsDefinition]:
    """Every tag asset of ``plan``, the wide table and the catalog: one subsettable step
    (``spark``: it needs the ``spark`` resource, engine spark)."""
    return [_tags_asset(plan, spark=spark)] if plan.tags else []


def build_definitions(kequn: KequnContext) -> dg.Definitions:
    """The tag assets and checks of the project's compiled plan, and its broken tags."""
    plan = kequn.plan.tags
    broken = list(kequn.project.broken_of("tag").values())
    if not plan.tags and not broken:
        return dg.Definitions()
    spark = kequn.settings.engine == "spark"
    return dg.Definitions(assets=[*tag_assets(plan, spark=spark), *broken_assets(broken)])
