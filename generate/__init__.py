"""The demo credit warehouse: deterministic, vectorised, ``raw.*`` exactly as architecture §3.

>>> from generate import generate_warehouse, phone_for   # doctest: +SKIP
>>> stats = generate_warehouse("data/warehouse.duckdb", customers=100_000, seed=7)  # doctest: +SKIP
"""

from generate.build import (
    BLOCK_CUSTOMERS,
    HISTORY_DAYS,
    GenerateStats,
    default_end_date,
    generate_warehouse,
)
from generate.phones import (
    phone_for,
    phone_hash,
    phone_hash_for,
    phone_number_for,
    phone_numbers_for,
    phones_for,
)
from generate.schema import TABLES

__all__ = [
    "BLOCK_CUSTOMERS",
    "HISTORY_DAYS",
    "TABLES",
    "GenerateStats",
    "default_end_date",
    "generate_warehouse",
    "phone_for",
    "phone_hash",
    "phone_hash_for",
    "phone_number_for",
    "phone_numbers_for",
    "phones_for",
]
