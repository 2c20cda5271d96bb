"""The kequn Dagster code location."""
