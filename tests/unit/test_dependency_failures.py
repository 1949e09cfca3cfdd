"""Unresolvable dependency sets are remembered with a growing backoff; start failures keep
their error code."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelbus_contract.errors import ModelUnavailable
from modelbus_worker.failures import remember_failure
from modelbus_worker.images.dependency_failures import DependencyFailures
from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.images.wheelhouse import (
    ensure_wheelhouse,
    raise_if_remembered,
    wheelhouse_key,
)
from modelbus_worker.pool.policy import remembered_message
from modelbus_worker.settings import ContainerSettings

DECISIVE = "docopt==0.6.2: no wheel for Python 3.11 / manylinux_2_36_x86_64 (only a source " \
    "distribution)"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_doubles_up_to_the_maximum_and_then_one_retry_is_allowed() -> None:
    clock = Clock()
    memory = DependencyFailures(clock)
    waits = []
    for _ in range(5):
        failure = memory.record("set", f"{DECISIVE}\npip: tail", 60, 300)
        waits.append(failure.retry_at - clock.now)
        assert failure.code == "model_unavailable"
    assert waits == [60, 120, 240, 300, 300]
    clock.now += 299
    with pytest.raises(ModelUnavailable) as info:
        memory.check("set")
    assert info.value.message == (
        f"{DECISIVE}\npip: tail\n(remembered: this dependency set failed to resolve 5 "
        "time(s); next attempt in 1s)"
    )
    clock.now += 1
    memory.check("set")  # due: the caller resolves once more
    memory.check("other set")
    memory.forget("set")
    assert memory.record("set", "again", 60, 300).failures == 1


def test_a_remembered_set_fails_without_running_pip(tmp_path: Path) -> None:
    settings = ContainerSettings(cache_dir=tmp_path)
    interpreter = Interpreter("3.11", "2.36")
    reqs = ["docopt==0.6.2", "pandas", "pyarrow"]
    memory = DependencyFailures(Clock())
    memory.record(wheelhouse_key(settings, reqs, interpreter), DECISIVE, 60, 3600)
    with pytest.raises(ModelUnavailable) as info:
        ensure_wheelhouse(settings, reqs, interpreter, memory)
    assert info.value.message.startswith(f"{DECISIVE}\n(remembered: ")
    assert not settings.wheelhouse_root.exists()  # pip never ran: nothing was made
    # Checked before waiting for other builds, too.
    with pytest.raises(ModelUnavailable):
        raise_if_remembered(settings, reqs, interpreter, memory)
    raise_if_remembered(settings, ["pandas", "pyarrow"], interpreter, memory)


def test_a_remembered_start_failure_is_answered_with_its_own_code_reason_first() -> None:
    failure = remember_failure(None, f"{DECISIVE}\npip: tail", 100.0, code="model_unavailable")
    failure = remember_failure(failure, f"{DECISIVE}\npip: tail", 110.0,
                               code="model_unavailable")
    assert (failure.code, failure.failures, failure.retry_at) == ("model_unavailable", 2, 130.0)
    assert remembered_message(failure, "m/1", 125.0) == (
        f"{DECISIVE}\npip: tail\n(m/1 failed to start (2 time(s)); next attempt in 5s)"
    )
    assert remember_failure(None, "boom", 0.0).code == "internal"
