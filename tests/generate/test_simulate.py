"""Invariants of the numpy simulation, for any seed and any (small) block size."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from generate.simulate import DAY, _add_months, simulate_block

START = np.datetime64("2024-01-01", "D")
DAYS = 731
END = DAYS * DAY


def _block(seed: int, n: int):
    return simulate_block(np.random.default_rng(seed), 1, n, START, DAYS, seed)


def test_add_months_clips_to_the_end_of_the_month() -> None:
    days = np.array(["2024-01-31", "2024-01-31", "2023-01-31", "2024-10-15", "2024-12-31"],
                    dtype="datetime64[D]")
    months = np.array([1, 2, 1, 3, 2])
    assert _add_months(days, months).astype(str).tolist() == [
        "2024-02-29", "2024-03-31", "2023-02-28", "2025-01-15", "2025-02-28",
    ]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 400))
def test_events_follow_each_other_and_stay_in_the_window(seed: int, n: int) -> None:
    block = _block(seed, n)
    cust, apps, loans, inst = block.customers, block.applications, block.loans, block.installments
    assert cust["customer_id"].tolist() == list(range(1, n + 1))
    assert ((cust["registered"] >= 0) & (cust["registered"] < END)).all()

    # Applications: after registration, decided after applied, before the end.
    assert (apps["applied"] >= cust["registered"][apps["customer"]]).all()
    assert (apps["applied"] < END).all()
    decided = apps["decided"] >= 0
    assert (apps["decided"][decided] >= apps["applied"][decided]).all()
    assert (apps["decided"] < END).all()
    assert ((apps["decision"] == 2) == ~decided).all()  # PENDING <=> no decision time
    assert ((apps["decision"] == 0) == (apps["limit_cents"] > 0)).all()

    # Loans: only after an approval decided before the loan was applied for.
    for customer, applied in zip(loans["customer"], loans["applied"], strict=True):
        mine = (apps["customer"] == customer) & (apps["decision"] == 0)
        assert mine.any() and apps["decided"][mine].min() <= applied
    failed = loans["failed"]
    assert (loans["disbursed"][failed] == -1).all()
    assert (loans["disbursed"][~failed] >= loans["applied"][~failed]).all()
    assert (loans["disbursed"] < END).all()
    assert (loans["status"][failed] == 1).all()
    assert set(np.unique(loans["term"]).tolist()) <= {3, 6, 12}

    # Installments: 1..term per disbursed loan, amounts summing to the principal.
    live = np.flatnonzero(~failed)
    counts = np.bincount(inst["loan"], minlength=loans["term"].size)
    assert (counts[live] == loans["term"][live]).all()
    assert (counts[failed] == 0).all()
    totals = np.bincount(inst["loan"], weights=inst["amount_cents"], minlength=counts.size)
    assert (totals[live] == loans["principal_cents"][live]).all()
    paid = inst["paid"] >= 0
    assert (inst["paid"] < END).all()
    assert (inst["paid"][paid] > loans["disbursed"][inst["loan"][paid]]).all()
    due_days = (inst["due"] - START).astype(np.int64)
    disbursed_days = loans["disbursed"][inst["loan"]] // DAY
    assert (due_days - disbursed_days >= 28 * inst["number"]).all()

    # SETTLED <=> every installment paid; settled_at is the last payment.
    unpaid = np.bincount(inst["loan"], weights=~paid, minlength=counts.size)
    settled = loans["status"] == 2
    assert (unpaid[settled] == 0).all()
    assert (unpaid[(loans["status"] == 0)] > 0).all()
    assert (loans["settled"][settled] >= 0).all() and (loans["settled"][~settled] == -1).all()
