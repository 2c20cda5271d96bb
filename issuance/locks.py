"""PostgreSQL advisory locks of the issuance engine: their namespaces and keys.

Every path takes its locks in one global order (see :mod:`issuance.service`): the
requests' idempotency keys, the campaign (shared by issues, exclusive for an approval
state change), customers in ascending key order, the campaign's counter rows, a coupon,
a loan. (A reverse locks its coupon before the counter rows; no path that holds the
counter rows waits for an existing coupon, issues only insert new ones.) SQLite needs
none of these: ``BEGIN IMMEDIATE`` serialises writers.
"""

from __future__ import annotations

import zlib

CUSTOMER = 0x6B71_0001
LOAN = 0x6B71_0002
KEY = 0x6B71_0003
CAMPAIGN = 0x6B71_0004
"""Namespaces of the two-key advisory locks (distinct from the one-key migration lock)."""


def lock_key(value: str | int) -> int:
    """A stable signed 32-bit key for an advisory lock on ``value``.

    >>> lock_key("wake_up_30d") == lock_key("wake_up_30d")
    True
    """
    return zlib.crc32(str(value).encode()) - 2**31
