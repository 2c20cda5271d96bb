"""Turning a simulated :class:`~generate.simulate.Block` into Arrow tables.

Arrow is how the numpy columns reach DuckDB without a row loop: timestamps become
``timestamp[us]`` (naive), cents become exact ``decimal128(12, 2)`` from their
integer buffers, enumeration codes become dictionary arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from generate.schema import CHANNELS, CREDIT_METHODS, CUSTOMER_TYPES, DECISIONS, LOAN_STATUSES
from generate.simulate import ASSET_PARTIES, CITIES, FUNDING_PARTIES, Block


@dataclass(frozen=True)
class IdOffsets:
    """Ids already used by earlier blocks (ids of a block continue from these)."""

    application: int = 0
    loan: int = 0


def _timestamps(seconds: np.ndarray, epoch_seconds: int) -> pa.Array:
    """Window seconds (−1 = NULL) as naive ``timestamp[us]``."""
    micros = (seconds + epoch_seconds) * 1_000_000
    return pa.array(micros, type=pa.int64(), mask=seconds < 0).cast(pa.timestamp("us"))


def _decimals(cents: np.ndarray) -> pa.Array:
    """Int64 cents (−1 = NULL) as exact ``decimal128(12, 2)``."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((cents.size, 2), dtype=np.int64)
    words[:, 0] = np.maximum(cents, 0)
    words[:, 1] = 0
    valid = cents >= 0
    validity = None
    if not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        pa.decimal128(12, 2), cents.size, [validity, pa.py_buffer(words)]
    )


def _enum(codes: np.ndarray, labels: tuple[str, ...]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int8)), pa.array(labels, type=pa.string())
    )


def block_tables(
    block: Block, offsets: IdOffsets, epoch_seconds: int
) -> tuple[dict[str, pa.Table], IdOffsets]:
    """The four tables of a block (customers carry ``phone_number``, hashed on insert)."""
    from generate.phones import phone_numbers_for

    cust, apps, loans, inst = block.customers, block.applications, block.loans, block.installments
    customer_ids = cust["customer_id"]
    customers = pa.table(
        {
            "customer_id": pa.array(customer_ids),
            "phone_number": pa.array(phone_numbers_for(customer_ids, block.seed)),
            "registered_at": _timestamps(cust["registered"], epoch_seconds),
            "channel": _enum(cust["channel"], CHANNELS),
            "customer_type": _enum(cust["customer_type"], CUSTOMER_TYPES),
            "city": _enum(cust["city"], CITIES),
        }
    )
    n_apps = apps["customer"].size
    applications = pa.table(
        {
            "application_id": pa.array(
                np.arange(offsets.application + 1, offsets.application + n_apps + 1)
            ),
            "customer_id": pa.array(customer_ids[apps["customer"]]),
            "applied_at": _timestamps(apps["applied"], epoch_seconds),
            "decided_at": _timestamps(apps["decided"], epoch_seconds),
            "decision": _enum(apps["decision"], DECISIONS),
            "credit_limit": _decimals(apps["limit_cents"]),
            "credit_method": _enum(apps["method"], CREDIT_METHODS),
        }
    )
    n_loans = loans["customer"].size
    loan_ids = np.arange(offsets.loan + 1, offsets.loan + n_loans + 1, dtype=np.int64)
    loans_table = pa.table(
        {
            "loan_id": pa.array(loan_ids),
            "customer_id": pa.array(customer_ids[loans["customer"]]),
            "applied_at": _timestamps(loans["applied"], epoch_seconds),
            "disbursed_at": _timestamps(loans["disbursed"], epoch_seconds),
            "status": _enum(loans["status"], LOAN_STATUSES),
            "settled_at": _timestamps(loans["settled"], epoch_seconds),
            "principal": _decimals(loans["principal_cents"]),
            "term_months": pa.array(loans["term"].astype(np.int32)),
            "asset_party": _enum(loans["asset"], ASSET_PARTIES),
            "funding_party": _enum(loans["funding"], FUNDING_PARTIES),
            "channel": _enum(loans["channel"], CHANNELS),
        }
    )
    installments = pa.table(
        {
            "loan_id": pa.array(loan_ids[inst["loan"]]),
            "installment_no": pa.array(inst["number"].astype(np.int32)),
            "due_date": pa.array(inst["due"].astype("datetime64[D]"), type=pa.date32()),
            "amount_due": _decimals(inst["amount_cents"]),
            "paid_at": _timestamps(inst["paid"], epoch_seconds),
        }
    )
    tables = {
        "customers": customers,
        "credit_applications": applications,
        "loans": loans_table,
        "installments": installments,
    }
    return tables, IdOffsets(offsets.application + n_apps, offsets.loan + n_loans)
