"""Compile loaded tags into SQL: one fused query per source, and the wide table.

Atomic tags whose query has the shape::

    SELECT <t>.customer_id, <aggregate expr> AS <name>
    FROM <same FROM and JOINs> [WHERE w] GROUP BY <t>.customer_id

(or, over ``raw.customers``, one row per customer with no GROUP BY) and that read
the same FROM clause are *fused*: one query computes them all, each tag's WHERE
becoming an aggregate ``FILTER (WHERE w)`` (``CASE WHEN w`` for row tags), with
the union of the WHEREs as a pre-filter. Queries of any other shape (subqueries,
windows, HAVING...) run on their own. Fusing never changes a value: an aggregate
that is not NULL over no rows (``count``, ``coalesce``...) is guarded so that a
customer the tag's own query would not return still gets NULL.

Every query keeps the day as the parameters ``$as_of`` and ``$as_of_end``
(:mod:`plan.params`), so :class:`TagPlan` is compiled once per process and serves every
day. Pure: builds sqlglot ASTs only; imports neither DuckDB nor Dagster.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cached_property
from pathlib import Path

from sqlglot import exp

from kequn.tables import CUSTOMER_TAGS, CUSTOMERS, TAGS_SCHEMA, qualified
from plan.division import QUOTIENT_SCALE, exact_division
from plan.params import as_of, as_of_end
from project.tag import DefaultValue, Tag

CUSTOMERS_TABLE = qualified(CUSTOMERS)
ONE_ROW_PER_CUSTOMER = (CUSTOMERS_TABLE,)
WIDE = qualified(CUSTOMER_TAGS)
NULL_ON_EMPTY = (exp.Count, exp.CountIf, exp.Coalesce, exp.Case, exp.If, exp.Anonymous,
                 exp.ArrayAgg, exp.Nvl2, exp.Greatest, exp.Least)
"""Nodes that may turn an aggregate over no rows into a non-NULL value (guarded)."""


@dataclass(frozen=True)
class Shape:
    """The parts of a fusable atomic query."""

    kind: str  # "aggregate" | "row"
    from_sql: str
    customer: exp.Expression
    value: exp.Expression
    where: exp.Expression | None
    select: exp.Select


@dataclass(frozen=True)
class TagGroup:
    """Atomic tags computed by one query (a fused scan of one source, or one tag alone)."""

    key: str
    tags: tuple[str, ...]
    fused: bool
    tables: tuple[str, ...]
    inline: bool = False
    """Row tags over ``raw.customers``: computed inside the wide SELECT (which scans that
    table anyway); the Spark engine stores nothing in ``table`` for them."""

    @property
    def table(self) -> str:
        """``tags._src_<key>``: where the Spark engine stores the group's rows (in the lake,
        and in the mirror its checks read); the DuckDB build stores every tag in the wide
        table only."""
        return f"{TAGS_SCHEMA}._src_{self.key}"


def shape_of(query: exp.Query) -> Shape | None:
    """The fusable shape of an atomic tag's query, or None when it must run alone.

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT customer_id, count(*) AS n FROM raw.loans "
    ...                       "WHERE status = 'FAILED' GROUP BY customer_id", read="duckdb")
    >>> shape_of(q).kind, shape_of(q).where.sql()
    ('aggregate', "status = 'FAILED'")
    """
    if not isinstance(query, exp.Select):
        return None
    args = query.args
    blocked = ("with_", "with", "having", "qualify", "order", "limit", "offset", "distinct",
               "windows", "laterals", "pivots", "prewhere", "sample", "settings", "connect",
               "into", "locks", "kind", "cluster", "distribute", "sort")
    if any(args.get(key) for key in blocked):
        return None
    source = args.get("from_") or args.get("from")
    if source is None or not isinstance(source.this, exp.Table) or source.this.args.get("joins"):
        return None
    joins = args.get("joins") or []
    if any(not isinstance(j.this, exp.Table) or j.args.get("method") for j in joins):
        return None
    if any(isinstance(n, (exp.Window, exp.Subquery, exp.Lateral, exp.Unnest))
           or (isinstance(n, exp.Select) and n is not query) for n in query.walk()):
        return None
    if len(query.expressions) != 2:
        return None
    customer, value = query.expressions
    if isinstance(value, exp.Column) or not isinstance(customer, exp.Column):
        customer, value = value, customer
    if not (isinstance(customer, exp.Column) and customer.name.lower() == "customer_id"
            and isinstance(value, exp.Alias)):
        return None
    from_sql = " ".join([source.sql(dialect="duckdb"), *(j.sql(dialect="duckdb")
                                                         for j in joins)])
    where = args["where"].this if args.get("where") else None
    group = args.get("group")
    has_agg = value.find(exp.AggFunc) is not None
    if group is not None:
        keys = group.expressions
        if group.args.get("rollup") or group.args.get("cube") or \
                group.args.get("grouping_sets") or len(keys) != 1:
            return None
        if keys[0].sql(dialect="duckdb") != customer.sql(dialect="duckdb") or not has_agg:
            return None
        return Shape("aggregate", from_sql, customer, value.this, where, query)
    if joins or has_agg or source.this.sql(dialect="duckdb").lower() not in ONE_ROW_PER_CUSTOMER:
        return None
    return Shape("row", from_sql, customer, value.this, where, query)


def plan_groups(tags: Mapping[str, Tag]) -> list[TagGroup]:
    """Split the atomic tags into storage groups: one per fusable source, one per other tag."""
    by_source: dict[tuple[str, str], list[Tag]] = {}
    alone: list[Tag] = []
    for tag in (t for t in tags.values() if t.kind == "atomic"):
        assert tag.query is not None
        shape = shape_of(tag.query)
        if shape is None:
            alone.append(tag)
        else:
            by_source.setdefault((shape.kind, shape.from_sql), []).append(tag)
    groups: list[TagGroup] = []
    used: set[str] = set()
    for (kind, from_sql), members in by_source.items():
        base = "_".join(t.split(".")[-1] for t in members[0].tables)
        if kind == "aggregate" and members[0].source in ONE_ROW_PER_CUSTOMER:
            base += "_agg"
        key, n = base, 2
        while key in used:
            key, n = f"{base}_{n}", n + 1
        used.add(key)
        tables = tuple(dict.fromkeys(t for m in members for t in m.tables))
        inline = kind == "row" and from_sql.lower() == f"from {CUSTOMERS_TABLE}"
        groups.append(TagGroup(key, tuple(m.name for m in members), True, tables, inline))
    for tag in alone:
        groups.append(TagGroup(f"tag_{tag.name}", (tag.name,), False, tag.tables))
    return groups


def group_of(groups: Sequence[TagGroup], name: str) -> TagGroup:
    """The group that computes atomic tag ``name``."""
    for group in groups:
        if name in group.tags:
            return group
    raise KeyError(name)


def date_literal(value: date) -> exp.Expression:
    """``CAST('YYYY-MM-DD' AS DATE)``: a date of a definition (not the day being built)."""
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))


def _filtered(value: exp.Expression, where: exp.Expression) -> exp.Expression:
    """``value`` with ``FILTER (WHERE where)`` on each outermost aggregate."""
    value = value.copy()
    targets = [agg for agg in value.find_all(exp.AggFunc)
               if not any(isinstance(a, exp.AggFunc) for a in _ancestors(agg, value))]
    for agg in targets:
        parent = agg.parent
        if isinstance(parent, exp.Filter):
            old = parent.expression.this
            parent.set("expression", exp.Where(this=exp.and_(old.copy(), where.copy())))
            continue
        replacement = exp.Filter(this=agg.copy(), expression=exp.Where(this=where.copy()))
        if agg is value:
            return replacement
        agg.replace(replacement)
    return value


def _ancestors(node: exp.Expression, stop: exp.Expression) -> Iterable[exp.Expression]:
    parent = node.parent
    while parent is not None and node is not stop:
        yield parent
        if parent is stop:
            return
        node, parent = parent, parent.parent


def _needs_guard(value: exp.Expression) -> bool:
    return any(isinstance(n, NULL_ON_EMPTY) for n in value.walk())


def stored_scale(tag: Tag) -> int:
    """The decimal places a quotient stored as the tag's value is rounded to (4 for a
    decimal tag, 0 for an integer tag; other types store no quotient directly)."""
    if tag.value_type not in ("decimal", "integer"):
        return QUOTIENT_SCALE
    params = exp.DataType.build(tag.sql_type, dialect="duckdb").expressions
    return int(params[1].name) if len(params) > 1 else 0


def _cast(value: exp.Expression, tag: Tag, *, divided: bool = False) -> exp.Expression:
    """``CAST(value AS <tag's type>)``, every division in ``value`` made exact
    (:mod:`plan.division`). An integer tag computed from a quotient (``divided``, or a
    division inside ``value``) is rounded half away from zero first: a DECIMAL to BIGINT
    cast rounds on DuckDB but truncates on Spark."""
    divided = divided or value.find(exp.Div) is not None
    value = exact_division(value, stored_scale(tag))
    if divided and tag.value_type == "integer":
        value = exp.Round(this=value)
    return exp.cast(value, exp.DataType.build(tag.sql_type, dialect="duckdb"))


def exact_query(tag: Tag) -> exp.Query:
    """The tag's own query with every division exact (:mod:`plan.division`): the tag's
    column rounded to its stored scale, any other quotient to ``QUOTIENT_SCALE``."""
    query = tag_query(tag)
    if isinstance(query, exp.Select):
        for projection in query.expressions:
            if isinstance(projection, exp.Alias) and projection.alias.lower() == tag.name:
                projection.set("this", exact_division(projection.this, stored_scale(tag)))
    return exact_division(query)  # type: ignore[return-value]


def tag_query(tag: Tag) -> exp.Query:
    """The tag's own query, as written (``$as_of``/``$as_of_end`` parameters in place)."""
    if tag.query is None:
        raise ValueError(f"{tag.name} is a derived tag")
    return tag.query.copy()


def _conjuncts(where: exp.Expression) -> frozenset[str]:
    """The terms ANDed together in ``where``, as SQL."""
    where = where.unnest()
    parts = where.flatten() if isinstance(where, exp.And) else [where]
    return frozenset(part.unnest().sql(dialect="duckdb") for part in parts)


def _absorbed(wheres: list[exp.Expression]) -> list[exp.Expression]:
    """``wheres`` (distinct conditions to be ORed) without those that hold only where
    another one does: ``A OR (A AND B)`` is ``A``, also under SQL's NULLs. The tags of a
    fused scan often filter on a common term and more (``disbursed_at < end`` and
    ``disbursed_at < end AND settled_at ...``); the scan's pre-filter needs the first
    alone.

    >>> import sqlglot
    >>> [w.sql() for w in _absorbed([sqlglot.parse_one("a < 1 AND b"),
    ...                                sqlglot.parse_one("a < 1"), sqlglot.parse_one("c")])]
    ['a < 1', 'c']
    """
    terms = [_conjuncts(w) for w in wheres]
    return [w for i, w in enumerate(wheres)
            if not any(j != i and other < terms[i] for j, other in enumerate(terms))]


def group_query(tags: Mapping[str, Tag], group: TagGroup,
                names: Iterable[str] | None = None) -> exp.Select:
    """``SELECT customer_id, <tag columns>`` computing ``names`` (default: all) of ``group``.

    Columns are cast to each tag's declared type. For a fused group the query scans the
    source once; for a standalone tag it wraps the tag's own query.
    """
    chosen = [tags[n] for n in (names if names is not None else group.tags)]
    if not chosen or any(t.name not in group.tags for t in chosen):
        raise ValueError(f"tags {[t.name for t in chosen]} are not all in group {group.key}")
    if not group.fused:
        (tag,) = chosen
        divided = tag_query(tag).find(exp.Div) is not None
        inner = exact_query(tag).subquery("q")
        return exp.select(
            exp.column("customer_id", "q").as_("customer_id"),
            _cast(exp.column(tag.name, "q"), tag, divided=divided).as_(tag.name),
        ).from_(inner)
    shapes = [shape_of(t.query) for t in chosen]  # type: ignore[arg-type]
    assert all(shapes)
    rendered = [(tag, shape, shape.value.copy(),  # type: ignore[union-attr]
                 shape.where.copy() if shape.where is not None else None)  # type: ignore[union-attr]
                for tag, shape in zip(chosen, shapes, strict=True)]
    first = shapes[0]
    assert first is not None
    wheres = [w for _, _, _, w in rendered]
    distinct = list({w.sql(dialect="duckdb"): w for w in wheres if w is not None}.values())
    shared = all(w is not None for w in wheres) and len(distinct) == 1
    prefilter: exp.Expression | None = None
    if all(w is not None for w in wheres):
        kept = _absorbed(distinct)
        prefilter = kept[0] if len(kept) == 1 else exp.or_(*[exp.paren(w.copy()) for w in kept])
    columns: list[exp.Expression] = [first.customer.copy().as_("customer_id")]
    for tag, shape, value, where in rendered:
        if where is not None and not shared:
            if shape.kind == "aggregate":
                guard = _needs_guard(value)
                value = _filtered(value, where)
                if guard:
                    count = exp.Filter(this=exp.Count(this=exp.Star()),
                                       expression=exp.Where(this=where.copy()))
                    value = exp.case().when(exp.GT(this=count, expression=exp.Literal.number(0)),
                                            value)
            else:
                value = exp.case().when(where.copy(), value)
        columns.append(_cast(value, tag).as_(tag.name))
    select = first.select
    fused = exp.Select(expressions=columns)
    fused.set("from_", (select.args.get("from_") or select.args.get("from")).copy())
    if select.args.get("joins"):
        fused.set("joins", [j.copy() for j in select.args["joins"]])
    if prefilter is not None:
        fused = fused.where(prefilter, copy=False)
    if first.kind == "aggregate":
        fused = fused.group_by(first.customer.copy(), copy=False)
    return exact_division(fused)  # type: ignore[return-value]  # the pre-filter's


def default_literal(tag: Tag) -> exp.Expression | None:
    """The SQL literal of the tag's missing-row default, or None (NULL)."""
    value: DefaultValue = tag.default
    if value is None:
        return None
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, Decimal)):
        return _cast(exp.Literal.number(str(value)), tag)
    if isinstance(value, date):
        return date_literal(value)
    return exp.Literal.string(str(value))


def _with_default(value: exp.Expression, tag: Tag) -> exp.Expression:
    default = default_literal(tag)
    return exp.Coalesce(this=value, expressions=[default]) if default is not None else value


def _base_condition(table: str | None = None) -> exp.Expression:
    """``registered_at < $as_of_end``: who is a customer on the day."""
    return exp.LT(this=exp.column("registered_at", table), expression=as_of_end())


def inline_value(tag: Tag, alias: str = "c") -> exp.Expression:
    """A row tag over raw.customers as an expression over that table aliased ``alias``.

    Its WHERE becomes ``CASE WHEN``, unless it is the customer-base condition itself
    (``registered_at < $as_of_end``), which the wide SELECT already applies.
    """
    shape = shape_of(tag.query)  # type: ignore[arg-type]
    assert shape is not None and shape.kind == "row"

    def requalify(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column):
            return exp.column(node.name, alias, quoted=node.this.quoted)
        return node

    value = shape.value.copy().transform(requalify)
    if shape.where is None:
        return value
    where = shape.where.copy()
    if where.sql(dialect="duckdb") == _base_condition().sql(dialect="duckdb"):
        return value
    return exp.case().when(where.transform(requalify), value)


STORED = "w"
"""Alias of the stored wide day inside :func:`wide_query` (the values of atomic tags not
computed by that build)."""


def tag_columns(tags: Mapping[str, Tag], groups: Sequence[TagGroup],
                computed: Collection[str] | None = None) -> dict[str, exp.Expression]:
    """Each tag's value as an expression over the wide SELECT's relations.

    Atomic tags in ``computed`` (default: all) read their group's column (group ``i``
    aliased ``g<i>``), the others their stored value of the day (alias ``w``), both
    with the default when declared; tags of an inline group are computed from
    ``raw.customers`` (alias c); derived tags inline the expressions of their inputs, so
    the wide table is one SELECT.
    """
    alias = {name: f"g{i}" for i, g in enumerate(groups) for name in g.tags}
    inline = {name for g in groups if g.inline for name in g.tags}
    out: dict[str, exp.Expression] = {}
    for tag in tags.values():
        if tag.kind == "atomic" and tag.name in inline:
            value = inline_value(tag)
            out[tag.name] = _with_default(_cast(value, tag), tag)
            continue
        if tag.kind == "atomic":
            source = alias[tag.name] if computed is None or tag.name in computed else STORED
            out[tag.name] = _with_default(exp.column(tag.name, source), tag)
            continue
        assert tag.expression is not None

        def swap(sub: exp.Expression) -> exp.Expression:
            if isinstance(sub, exp.Column) and not sub.table:
                return exp.paren(out[sub.name.lower()].copy())
            return sub

        expanded = tag.expression.copy().transform(swap)
        out[tag.name] = _with_default(_cast(expanded, tag), tag)
    return out


def _wide_select(tags: Mapping[str, Tag], groups: Sequence[TagGroup],
                 computed: Collection[str] | None) -> exp.Select:
    columns = tag_columns(tags, groups, computed)
    select = exp.select(as_of().as_("as_of"), exp.column("customer_id", "c").as_("customer_id"),
                        *[value.as_(name) for name, value in columns.items()])
    return select.from_(exp.to_table(CUSTOMERS_TABLE).as_("c"))


def _joined(select: exp.Select, relation: exp.Select, alias: str) -> exp.Select:
    condition = exp.EQ(this=exp.column("customer_id", alias),
                       expression=exp.column("customer_id", "c"))
    return select.join(relation.subquery(alias), on=condition, join_type="left")


def wide_query(tags: Mapping[str, Tag], groups: Sequence[TagGroup],
               computed: Collection[str] | None = None,
               kept: Sequence[str] = ()) -> exp.Select:
    """The wide table for the day in one query: every customer registered by its end, one
    column per tag, the atomic tags in ``computed`` (default: all) computed from their
    sources by their groups' fused queries, the others read from the wide table's stored
    rows of the day; derived tags are computed inside the same SELECT. The columns
    ``kept`` (of tags whose definition is broken) are copied from the stored day as they
    are.
    """
    select = _wide_select(tags, groups, computed)
    if kept:
        select = select.select(*[exp.column(n, STORED).as_(n) for n in kept], copy=False)
    stored = bool(kept)
    for i, group in enumerate(groups):
        if group.inline:
            continue
        chosen = [n for n in group.tags if computed is None or n in computed]
        if chosen:
            select = _joined(select, group_query(tags, group, chosen), f"g{i}")
        stored = stored or len(chosen) < len(group.tags)
    if stored:  # the day is filtered inside the subquery, so that it reaches the scan
        select = _joined(select, day_rows(exp.to_table(WIDE)), STORED)
    return select.where(_base_condition("c"))


def customer_tags_query(tags: Mapping[str, Tag], groups: Sequence[TagGroup]) -> exp.Select:
    """The wide table for the day from each group's rows stored in ``tags._src_<key>``
    (the Spark engine's layout: it stores every group in the lake, then joins them).

    Joins ``raw.customers`` to each group's stored rows of that day (one join per source)
    and computes derived tags inside the same SELECT.
    """
    select = _wide_select(tags, groups, None)
    for i, group in enumerate(groups):
        if not group.inline:
            # The day is filtered inside a subquery so that it reaches the table scan (a
            # condition in a LEFT JOIN's ON clause is not pushed down).
            select = _joined(select, day_rows(exp.to_table(group.table)), f"g{i}")
    return select.where(_base_condition("c"))


def day_rows(relation: exp.Expression) -> exp.Select:
    """``SELECT * FROM relation WHERE as_of = $as_of``."""
    return exp.select("*").from_(relation).where(
        exp.EQ(this=exp.column("as_of"), expression=as_of()))


def domain_condition(tag: Tag) -> exp.Expression | None:
    """A condition true for values outside the tag's declared domain (None: no domain)."""
    col = exp.column(tag.name)
    parts: list[exp.Expression] = []
    if tag.domain.values:
        parts.append(exp.not_(col.isin(*[exp.Literal.string(v) for v in tag.domain.values])))
    if tag.domain.minimum is not None:
        parts.append(exp.LT(this=col.copy(),
                            expression=exp.Literal.number(str(tag.domain.minimum))))
    if tag.domain.maximum is not None:
        parts.append(exp.GT(this=col.copy(),
                            expression=exp.Literal.number(str(tag.domain.maximum))))
    return exp.or_(*parts) if parts else None


def distinct_ids(ids: tuple[int, int] | None = None) -> exp.Expression:
    """The number of distinct ``customer_id`` values: ``count(DISTINCT customer_id)``, or,
    given the ids' (min, max) bounds, the set bits of a bitmap over that range (the same
    number without hashing every id; for bounds that :func:`bitmap_fits`)."""
    column = exp.column("customer_id")
    if ids is None:
        return exp.Count(this=exp.Distinct(expressions=[column]))
    low, high = (exp.cast(exp.Literal.number(v), exp.DataType.build("BIGINT")) for v in ids)
    bitmap = exp.Anonymous(this="bitstring_agg", expressions=[column, low, high])
    return exp.Coalesce(this=exp.Anonymous(this="bit_count", expressions=[bitmap]),
                        expressions=[exp.Literal.number(0)])


def bitmap_fits(ids: tuple[int, int] | None, rows: int) -> bool:
    """Whether a bitmap over the id bounds ``ids`` is small: at most 2^30 bits and 64 bits
    per row (plus 64 Ki), so that counting with it beats hashing."""
    if ids is None:
        return False
    span = ids[1] - ids[0] + 1
    return span <= min(2 ** 30, 64 * rows + 65_536)


def stats_query(tags: Mapping[str, Tag], relation: exp.Expression,
                names: Iterable[str], *, unique: bool = False,
                ids: tuple[int, int] | None = None) -> exp.Select:
    """Per tag, over the day's rows of ``relation``: ``<name>__rows`` (non-NULL values),
    ``<name>__covered`` (values neither NULL, FALSE nor the tag's
    declared default) and, for a tag with a declared
    domain, ``<name>__bad`` (values outside it); plus ``_rows`` (all rows) and
    ``_customers`` (distinct customer ids; the row count when ``unique``: the relation
    holds one row per customer by construction; counted over a bitmap given the ids'
    bounds ``ids``, see :func:`distinct_ids`). One scan serves the build's statistics
    and the checks' counts."""
    customers = exp.Count(this=exp.Star()) if unique else distinct_ids(ids)
    columns: list[exp.Expression] = [
        exp.Count(this=exp.Star()).as_("_rows"), customers.as_("_customers")]
    for name in names:
        tag = tags[name]
        col = exp.column(tag.name)
        if tag.value_type == "boolean":  # TRUE counts, unless TRUE is the default
            covered = (exp.CountIf(this=col) if tag.default is not True
                       else exp.Literal.number(0))
        elif tag.default is not None:
            covered = exp.CountIf(this=exp.NEQ(this=col.copy(), expression=exp.convert(
                tag.default)))
        else:
            covered = exp.Count(this=col)
        columns.append(exp.Count(this=col.copy()).as_(f"{name}__rows"))
        columns.append(covered.as_(f"{name}__covered"))
        outside = domain_condition(tag)
        if outside is not None:
            columns.append(exp.CountIf(this=outside).as_(f"{name}__bad"))
    return exp.select(*columns).from_(day_rows(relation).subquery("d"))


def registered_customers_query() -> exp.Select:
    """``SELECT count(*)`` of customers registered by the end of the day."""
    return exp.select(exp.Count(this=exp.Star())).from_(exp.to_table(CUSTOMERS_TABLE)).where(
        _base_condition())


def computed_relation(tags: Mapping[str, Tag], group: TagGroup) -> exp.Expression:
    """A group's values for the day as a relation ``(as_of, customer_id, <tags>)``, computed
    by its query: what checks read for an inline group, which stores nothing."""
    query = exp.select(as_of().as_("as_of"), exp.Star()).from_(
        group_query(tags, group).subquery("q"))
    return query.subquery(f"_src_{group.key}")


@dataclass(frozen=True)
class TagPlan:
    """The compiled tags of a project: storage groups and their queries, for every day.

    ``broken`` names tags whose definition is broken: their stored columns are kept as
    they are (nothing is dropped) and they are not computed.
    """

    tags: Mapping[str, Tag]
    groups: tuple[TagGroup, ...]
    broken: tuple[str, ...] = ()
    root: Path | None = None
    """The tags folder (where a failure of the whole build is reported)."""
    _subsets: dict[tuple[str, tuple[str, ...]], exp.Select] = field(
        default_factory=dict, repr=False, compare=False)
    _days: dict[tuple[tuple[str, ...], tuple[str, ...]], exp.Select] = field(
        default_factory=dict, repr=False, compare=False)

    @cached_property
    def atomic(self) -> tuple[str, ...]:
        """The atomic tags' names, in definition order."""
        return tuple(t.name for t in self.tags.values() if t.kind == "atomic")

    def group_of(self, name: str) -> TagGroup:
        """The group that computes atomic tag ``name``."""
        return group_of(self.groups, name)

    def group_query(self, group: TagGroup, names: Iterable[str] | None = None) -> exp.Select:
        """The group's query for ``names`` (default: all its tags); built once per subset."""
        chosen = tuple(names) if names is not None else group.tags
        key = (group.key, chosen)
        if key not in self._subsets:
            self._subsets[key] = group_query(self.tags, group, chosen)
        return self._subsets[key]

    @cached_property
    def customer_tags_query(self) -> exp.Select:
        """The wide table's SELECT for the day from the groups' stored rows (the Spark
        engine's layout; ``$as_of``, ``$as_of_end``)."""
        return customer_tags_query(self.tags, self.groups)

    def wide_query(self, computed: Iterable[str] | None = None,
                   kept: Sequence[str] = ()) -> exp.Select:
        """:func:`wide_query` computing the atomic tags ``computed`` (default: all),
        reading the others' stored values of the day and copying the stored columns
        ``kept``; built once per subset."""
        wanted = None if computed is None else set(computed)
        chosen = [n for n in self.atomic if wanted is None or n in wanted]
        key = (tuple(chosen), tuple(kept))
        if key not in self._days:
            self._days[key] = wide_query(self.tags, self.groups, chosen, kept)
        return self._days[key]

    @cached_property
    def columns(self) -> dict[str, exp.Expression]:
        """Each tag's value as computed inside the wide SELECT."""
        return tag_columns(self.tags, self.groups)

    @cached_property
    def built(self) -> dict[str, Tag]:
        """The tags but those with a broken definition: the ones built (and given a
        distribution) each day."""
        return {n: t for n, t in self.tags.items() if n not in self.broken}

    def unique_by_construction(self, group: TagGroup) -> bool:
        """Whether the group's stored rows are one per customer by construction: its fused
        query groups by ``customer_id`` (a merge of a subset keeps that)."""
        return group.fused and not group.inline and \
            self.group_query(group).args.get("group") is not None

    def relation(self, group: TagGroup, *, stored: bool = False) -> exp.Expression:
        """A group's values for the day: computed by its query, or (``stored``, the Spark
        engine's mirror) read from its table (inline groups are computed either way)."""
        if group.inline or not stored:
            return computed_relation(self.tags, group)
        return exp.to_table(group.table)


def compile_tags(tags: Mapping[str, Tag], broken: Iterable[str] = (),
                 root: Path | None = None) -> TagPlan:
    """The plan of the valid ``tags`` (in dependency order); see :class:`TagPlan`."""
    return TagPlan(tags, tuple(plan_groups(tags)), tuple(sorted(broken)), root)


def pretty(node: exp.Expression) -> str:
    """DuckDB SQL, pretty-printed (what the snapshots and Dagster metadata show)."""
    return node.sql(dialect="duckdb", pretty=True)
