"""Mobile numbers of the demo customers, derivable from (customer_id, seed).

The warehouse stores only ``phone_hash`` (lowercase hex SHA-256 of the 11-digit
number, architecture §3). Tests and the file-import feature need the real numbers of
known customers, so the number is a pure function of the customer id and the seed:
an affine permutation of ``[0, 7·10⁹)`` mapped onto ``13000000000 .. 19999999999``
(first digit 1, second digit 3-9). Being a bijection, no two customers of one
warehouse share a number.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from math import gcd

import numpy as np

PHONE_SPACE = 7_000_000_000
"""How many numbers there are: second digit 3-9, then 9 free digits."""
PHONE_BASE = 13_000_000_000
"""The smallest number: ``13000000000``."""
_PHONE_STREAM = 0x9E3779B9  # spawn key separating the phone stream from the event streams
_LOW_BITS = 17


@lru_cache(maxsize=64)
def _affine(seed: int) -> tuple[int, int]:
    """Multiplier (coprime with PHONE_SPACE) and offset of the permutation for a seed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _PHONE_STREAM]))
    a = int(rng.integers(PHONE_SPACE // 3, PHONE_SPACE - 1))
    while gcd(a, PHONE_SPACE) != 1:
        a += 1
    b = int(rng.integers(0, PHONE_SPACE))
    return a, b


def _check_ids(low: int, high: int) -> None:
    if low < 0 or high >= PHONE_SPACE:
        raise ValueError(f"customer ids must lie in [0, {PHONE_SPACE}), got {low}..{high}")


def phone_number_for(customer_id: int, seed: int) -> int:
    """The 11-digit mobile number of ``customer_id`` in the warehouse made with ``seed``.

    >>> phone_number_for(1, 7) == phone_number_for(1, 7)
    True
    >>> str(phone_number_for(42, 7))[:1], len(str(phone_number_for(42, 7)))
    ('1', 11)
    """
    _check_ids(customer_id, customer_id)
    a, b = _affine(seed)
    return PHONE_BASE + (a * customer_id + b) % PHONE_SPACE


def phone_for(customer_id: int, seed: int) -> str:
    """The mobile number of ``customer_id`` (seed ``seed``) as an 11-character string."""
    return str(phone_number_for(customer_id, seed))


def phone_hash(phone: str) -> str:
    """Lowercase hex SHA-256 of a phone number string, as stored in ``raw.customers``."""
    return hashlib.sha256(phone.encode("ascii")).hexdigest()


def phone_hash_for(customer_id: int, seed: int) -> str:
    """The ``phone_hash`` stored for ``customer_id`` in the warehouse made with ``seed``."""
    return phone_hash(phone_for(customer_id, seed))


def phone_numbers_for(customer_ids: np.ndarray, seed: int) -> np.ndarray:
    """Vectorised :func:`phone_number_for`: an int64 array of 11-digit numbers.

    Exact integer arithmetic: the product is split so that no term exceeds 2⁵¹.
    """
    ids = np.asarray(customer_ids, dtype=np.int64)
    if ids.size:
        _check_ids(int(ids.min()), int(ids.max()))
    a, b = _affine(seed)
    a64 = np.int64(a)
    space = np.int64(PHONE_SPACE)
    high = ids >> _LOW_BITS
    low = ids & np.int64((1 << _LOW_BITS) - 1)
    part = (a64 * high) % space
    part = (part << _LOW_BITS) % space
    part = (part + (a64 * low) % space + np.int64(b)) % space
    return part + np.int64(PHONE_BASE)


def phones_for(customer_ids: np.ndarray, seed: int) -> list[str]:
    """Vectorised :func:`phone_for`: the numbers as strings, in the order of the ids."""
    return phone_numbers_for(customer_ids, seed).astype(str).tolist()
