"""Phone numbers derivable from (customer_id, seed): format, exactness, uniqueness."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from generate.phones import (
    PHONE_SPACE,
    phone_for,
    phone_hash,
    phone_hash_for,
    phone_number_for,
    phone_numbers_for,
    phones_for,
)

ids = st.integers(min_value=0, max_value=PHONE_SPACE - 1)
seeds = st.integers(min_value=0, max_value=2**32)


@given(ids, seeds)
def test_phone_is_a_chinese_mobile_number(customer_id: int, seed: int) -> None:
    phone = phone_for(customer_id, seed)
    assert len(phone) == 11
    assert phone.isdigit()
    assert phone[0] == "1"
    assert phone[1] in "3456789"


@given(st.lists(ids, min_size=1, max_size=50), seeds)
def test_vectorised_numbers_equal_the_scalar_ones(customer_ids: list[int], seed: int) -> None:
    vector = phone_numbers_for(np.array(customer_ids, dtype=np.int64), seed)
    assert vector.tolist() == [phone_number_for(i, seed) for i in customer_ids]
    assert phones_for(np.array(customer_ids), seed) == [phone_for(i, seed) for i in customer_ids]


def test_numbers_are_unique_within_a_warehouse() -> None:
    numbers = phone_numbers_for(np.arange(1, 1_000_001), seed=7)
    assert np.unique(numbers).size == numbers.size


def test_numbers_depend_on_the_seed() -> None:
    first = phone_numbers_for(np.arange(1, 1001), seed=1)
    second = phone_numbers_for(np.arange(1, 1001), seed=2)
    assert (first != second).mean() > 0.99


def test_hash_is_lowercase_hex_sha256_of_the_number() -> None:
    phone = phone_for(42, 7)
    assert phone_hash(phone) == hashlib.sha256(phone.encode()).hexdigest()
    assert phone_hash_for(42, 7) == phone_hash(phone)
    assert phone_hash_for(42, 7) == phone_hash_for(42, 7).lower()


@pytest.mark.parametrize("bad", [-1, PHONE_SPACE])
def test_ids_outside_the_number_space_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="customer ids must lie in"):
        phone_for(bad, 7)
    with pytest.raises(ValueError, match="customer ids must lie in"):
        phone_numbers_for(np.array([1, bad]), 7)
