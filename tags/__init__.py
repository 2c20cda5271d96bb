"""Tags: customer attributes defined as files, compiled to fused DuckDB SQL (DESIGN §4).

Pure modules (no DuckDB, no Dagster): :mod:`tags.model`, :mod:`tags.load`,
:mod:`tags.derived`, :mod:`tags.compile`. Execution sits on top in :mod:`tags.build`
and :mod:`tags.catalog`.
"""
