"""Coupon states and the only transitions allowed between them.

``unused → occupied → used | unused | voided``, ``unused → expired | voided`` and
``used → voided | unused`` (a drawdown reversed after confirm). ``expired`` and ``voided``
are final.

>>> can_move(UNUSED, OCCUPIED), can_move(USED, OCCUPIED)
(True, False)
"""

from __future__ import annotations

from typing import Final

UNUSED: Final = "unused"
OCCUPIED: Final = "occupied"
USED: Final = "used"
EXPIRED: Final = "expired"
VOIDED: Final = "voided"

STATES: Final = (UNUSED, OCCUPIED, USED, EXPIRED, VOIDED)
LIVE: Final = frozenset({UNUSED, OCCUPIED})
FINAL: Final = frozenset({EXPIRED, VOIDED})

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    UNUSED: frozenset({OCCUPIED, EXPIRED, VOIDED}),
    OCCUPIED: frozenset({USED, UNUSED, VOIDED}),
    USED: frozenset({VOIDED, UNUSED}),
    EXPIRED: frozenset(),
    VOIDED: frozenset(),
}


class IllegalTransition(ValueError):
    """A state change that the coupon life cycle does not allow."""

    def __init__(self, source: str, target: str):
        self.source = source
        self.target = target
        super().__init__(f"a coupon cannot go from '{source}' to '{target}'")


def can_move(source: str, target: str) -> bool:
    """Whether ``source → target`` is a legal transition."""
    return target in TRANSITIONS.get(source, frozenset())


def check_move(source: str, target: str) -> None:
    """Raise :class:`IllegalTransition` unless ``source → target`` is legal."""
    if not can_move(source, target):
        raise IllegalTransition(source, target)
