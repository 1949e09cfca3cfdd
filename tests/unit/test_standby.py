"""The standby pool's bookkeeping with a fake container launcher (no Docker) and a clock
that moves only when a test moves it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.timers import ManualTimers

from modelbus_worker.pool import standby as standby_module
from modelbus_worker.pool.channel import Channel
from modelbus_worker.pool.standby import Runtime, StandbyPool
from modelbus_worker.settings import ContainerSettings


class FakeDocker:
    def __init__(self) -> None:
        self.running: set[str] = set()
        self.removed: list[str] = []

    def running_ids(self) -> set[str]:
        return set(self.running)

    def remove(self, container_id: str) -> None:
        self.running.discard(container_id)
        self.removed.append(container_id)


class FakeLauncher:
    """``launch`` as the pool calls it: a container that runs at once and answers when
    ``gate`` is set. Every step it takes is told through ``until``."""

    def __init__(self, tmp_path: Path) -> None:
        self.docker = FakeDocker()
        self.gate = asyncio.Event()
        self.gate.set()
        self.launched: list[str] = []
        self.clock = ManualTimers()
        self._tmp_path = tmp_path
        self._numbers = itertools.count(1)
        self._changed = asyncio.Event()

    async def launch(self, docker_: Any, settings: Any, image: str, key: str) -> Runtime:
        cid = f"{image}-{next(self._numbers)}"
        self.launched.append(cid)
        self.docker.running.add(cid)
        self._changed.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.docker.remove(cid)
            raise
        # Told before the task ends; a waiter resumes after it has ended.
        self._changed.set()
        path = self._tmp_path / cid
        return Runtime(image, cid, path, Channel(path / "s"), 0.1)

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Until ``condition`` holds after one of the launcher's steps (10 s at most)."""
        try:
            async with asyncio.timeout(10):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"never happened: {what}") from None


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeLauncher:
    launcher = FakeLauncher(tmp_path)
    monkeypatch.setattr(standby_module, "launch", launcher.launch)
    return launcher


def make(fake: FakeLauncher, **overrides: Any) -> StandbyPool:
    settings = ContainerSettings().model_copy(update=overrides)
    return StandbyPool(settings, fake.docker, clock=lambda: fake.clock.now)


async def test_replenish_keeps_per_image_and_total_caps(fake: FakeLauncher) -> None:
    pool = make(fake, standby_per_image=1, max_standby=2)
    pool.replenish("a")
    pool.replenish("a")  # already has one (starting)
    await fake.until(lambda: pool.container_ids() == {"a": ["a-1"]}, "a-1 ready")
    assert fake.launched == ["a-1"]
    fake.clock.advance(1)
    pool.replenish("b")
    fake.clock.advance(1)
    pool.replenish("c")  # over the total: the oldest standby of another image (a) goes
    await fake.until(lambda: set(pool.container_ids()) == {"b", "c"}, "b and c ready")
    assert pool.container_ids() == {"b": ["b-2"], "c": ["c-3"]}
    await pool.close()
    assert sorted(fake.docker.removed) == ["a-1", "b-2", "c-3"]


async def test_zero_turns_standbys_off(fake: FakeLauncher) -> None:
    for overrides in ({"standby_per_image": 0}, {"max_standby": 0}):
        pool = make(fake, **overrides)
        pool.replenish("a")
        assert pool.starting() == 0 and pool.container_ids() == {}
    assert fake.launched == []


async def test_claim_takes_a_ready_one_else_one_starting(fake: FakeLauncher) -> None:
    pool = make(fake, standby_per_image=2, max_standby=2)
    assert pool.claim("a") is None
    fake.gate.clear()
    pool.replenish("a")
    await fake.until(lambda: fake.launched == ["a-1", "a-2"], "both launches under way")
    assert pool.starting() == 2
    task = pool.claim("a")
    assert task is not None and not task.done()
    fake.gate.set()
    assert (await task).container_id == "a-1"
    await fake.until(lambda: pool.container_ids() == {"a": ["a-2"]}, "a-2 ready")
    assert pool.claim("b") is None
    await pool.close()
    assert fake.docker.removed == ["a-2"]  # a claimed standby belongs to its claimer


async def test_reap_drops_dead_standbys_and_those_idle_for_the_timeout(
    fake: FakeLauncher,
) -> None:
    pool = make(fake, idle_timeout_s=3600, standby_per_image=1, max_standby=2)
    pool.replenish("a")
    pool.replenish("b")
    await fake.until(lambda: set(pool.container_ids()) == {"a", "b"}, "a and b ready")
    fake.docker.running.discard("a-1")  # died
    await pool.reap()
    assert pool.container_ids() == {"b": ["b-2"]}
    fake.clock.advance(3599)  # ready at 0: idle for 3599 s
    await pool.reap()
    assert pool.container_ids() == {"b": ["b-2"]}
    fake.clock.advance(1)  # idle for the whole timeout
    await pool.reap()
    assert pool.container_ids() == {}
    assert sorted(fake.docker.removed) == ["a-1", "b-2"]


async def test_idleness_counts_from_when_a_standby_was_ready(fake: FakeLauncher) -> None:
    pool = make(fake, idle_timeout_s=10, standby_per_image=1, max_standby=1)
    fake.gate.clear()
    pool.replenish("a")
    await fake.until(lambda: fake.launched == ["a-1"], "the launch under way")
    fake.clock.advance(60)  # a long start
    fake.gate.set()
    await fake.until(lambda: pool.container_ids() == {"a": ["a-1"]}, "a-1 ready")
    fake.clock.advance(9)
    await pool.reap()
    assert pool.container_ids() == {"a": ["a-1"]}
    fake.clock.advance(1)
    await pool.reap()
    assert pool.container_ids() == {}
    assert fake.docker.removed == ["a-1"]


async def test_close_removes_standbys_still_starting_and_refuses_new_ones(
    fake: FakeLauncher,
) -> None:
    pool = make(fake)
    fake.gate.clear()
    pool.replenish("a")
    await fake.until(lambda: fake.launched == ["a-1"], "the launch under way")
    await pool.close()
    assert fake.docker.removed == ["a-1"] and fake.docker.running == set()
    pool.replenish("a")
    assert pool.starting() == 0


async def test_abandoned_claim_is_removed(fake: FakeLauncher) -> None:
    pool = make(fake)
    pool.replenish("a")
    await fake.until(lambda: pool.container_ids() == {"a": ["a-1"]}, "a-1 ready")
    task = pool.claim("a")
    assert task is not None
    pool.abandon(task)
    await pool.close()
    assert fake.docker.removed == ["a-1"]
