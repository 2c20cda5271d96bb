"""The coupon life cycle allows exactly the documented transitions."""

from __future__ import annotations

import itertools

import pytest

from issuance.states import STATES, IllegalTransition, can_move, check_move

LEGAL = {
    ("unused", "occupied"), ("occupied", "used"), ("occupied", "unused"),
    ("occupied", "voided"), ("unused", "expired"), ("unused", "voided"),
    ("used", "voided"), ("used", "unused"),  # a drawdown reversed after confirm
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(STATES, STATES)))
def test_only_documented_transitions(source: str, target: str) -> None:
    assert can_move(source, target) == ((source, target) in LEGAL)
    if (source, target) in LEGAL:
        check_move(source, target)
    else:
        with pytest.raises(IllegalTransition, match=f"from '{source}' to '{target}'"):
            check_move(source, target)
