"""The DuckDB warehouse: opening it safely (:mod:`warehouse.db`) and its versioned schema
(:mod:`warehouse.schema`)."""
