"""Dagster assets, one module per area; each exposes ``build_definitions(settings)``."""
