"""Cores shared between the warehouse and the steps working beside it (kequn.cores)."""

from __future__ import annotations

import threading

import pytest

from kequn import cores
from kequn.cores import machine_cores, warehouse_threads, working_beside_the_warehouse


def test_alone_the_warehouse_has_every_core() -> None:
    assert warehouse_threads() == machine_cores() >= 1


def test_each_step_beside_takes_one_core_and_gives_it_back(monkeypatch) -> None:
    monkeypatch.setattr(cores, "machine_cores", lambda: 4)
    with working_beside_the_warehouse():
        assert warehouse_threads() == 3
        with working_beside_the_warehouse():
            assert warehouse_threads() == 2
        assert warehouse_threads() == 3
    assert warehouse_threads() == 4


def test_the_warehouse_keeps_at_least_one_thread(monkeypatch) -> None:
    monkeypatch.setattr(cores, "machine_cores", lambda: 2)
    with working_beside_the_warehouse(), working_beside_the_warehouse(), \
            working_beside_the_warehouse():
        assert warehouse_threads() == 1
    assert warehouse_threads() == 2


def test_a_step_that_fails_gives_its_core_back(monkeypatch) -> None:
    monkeypatch.setattr(cores, "machine_cores", lambda: 2)
    with pytest.raises(RuntimeError), working_beside_the_warehouse():
        raise RuntimeError("the step failed")
    assert warehouse_threads() == 2


def test_steps_on_many_threads_are_counted_exactly(monkeypatch) -> None:
    monkeypatch.setattr(cores, "machine_cores", lambda: 1000)
    inside = threading.Barrier(51, timeout=20)
    leave = threading.Event()

    def step() -> None:
        with working_beside_the_warehouse():
            inside.wait()
            leave.wait(20)

    threads = [threading.Thread(target=step) for _ in range(50)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert warehouse_threads() == 950
    leave.set()
    for thread in threads:
        thread.join()
    assert warehouse_threads() == 1000
