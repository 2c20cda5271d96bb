"""The in-process runner: the same job the UI runs, failures reported by step and day."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from app.context import KequnContext
from dagster_project.runner import days_between, generate_demo_warehouse, materialize_days
from kequn.errors import ExecutionError, ValidationError

DAY = date(2026, 3, 31)


@pytest.fixture(scope="module")
def instance():
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


def test_days_between_is_inclusive_and_refuses_a_reversed_range() -> None:
    assert days_between(date(2026, 2, 27), date(2026, 3, 1)) == [
        date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]
    with pytest.raises(ValidationError, match="before --from"):
        days_between(date(2026, 3, 2), date(2026, 3, 1))


@pytest.mark.slow
def test_materialize_a_selection_then_report_a_failing_step(instance) -> None:
    kequn = KequnContext()
    rows, last = generate_demo_warehouse(customers=2000, seed=5, end_date=DAY,
                                         kequn=kequn, instance=instance)
    assert rows["customers"] == 2000 and last == DAY

    runs = materialize_days([DAY], select="key:tags/drawn", kequn=kequn,
                            instance=instance)
    assert runs[0].materialized == ["tags/drawn"]

    # The wide table was never built for the day, so the rule segment cannot run.
    with pytest.raises(ExecutionError) as failure:
        materialize_days([DAY], select="key:segments/wake_up", kequn=kequn,
                         instance=instance)
    message = failure.value.message
    assert message.startswith(f"the run for {DAY} failed")
    assert "segments__wake_up" in message


def test_a_selection_that_matches_nothing_is_a_user_error(instance) -> None:
    with pytest.raises(ValidationError, match="matches no asset"):
        materialize_days([DAY], select="key:tags/no_such_tag", kequn=KequnContext(),
                         instance=instance)
