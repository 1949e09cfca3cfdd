"""The standby pool's bookkeeping with a fake container launcher (no Docker)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

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


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    docker = FakeDocker()
    gate = asyncio.Event()
    gate.set()
    numbers = itertools.count(1)
    launched: list[str] = []

    async def launch(docker_: Any, settings: Any, image: str, key: str) -> Runtime:
        cid = f"{image}-{next(numbers)}"
        launched.append(cid)
        docker.running.add(cid)
        try:
            await gate.wait()
        except asyncio.CancelledError:
            docker.remove(cid)
            raise
        return Runtime(image, cid, tmp_path / cid, Channel(tmp_path / cid / "s"), 0.1)

    monkeypatch.setattr(standby_module, "launch", launch)
    return SimpleNamespace(docker=docker, gate=gate, launched=launched)


def make(fake: Any, **overrides: Any) -> StandbyPool:
    settings = ContainerSettings().model_copy(update=overrides)
    return StandbyPool(settings, fake.docker)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_replenish_keeps_per_image_and_total_caps(fake: Any) -> None:
    pool = make(fake, standby_per_image=1, max_standby=2)
    pool.replenish("a")
    pool.replenish("a")  # already has one (starting)
    await settle()
    assert fake.launched == ["a-1"]
    assert pool.container_ids() == {"a": ["a-1"]}
    pool.replenish("b")
    pool.replenish("c")  # over the total: the oldest standby of another image goes
    await settle()
    assert set(pool.container_ids()) == {"b", "c"}
    await pool.close()
    assert sorted(fake.docker.removed) == ["a-1", "b-2", "c-3"]


async def test_zero_turns_standbys_off(fake: Any) -> None:
    for overrides in ({"standby_per_image": 0}, {"max_standby": 0}):
        pool = make(fake, **overrides)
        pool.replenish("a")
        assert pool.starting() == 0 and pool.container_ids() == {}
    assert fake.launched == []


async def test_claim_takes_a_ready_one_else_one_starting(fake: Any) -> None:
    pool = make(fake, standby_per_image=2, max_standby=2)
    assert pool.claim("a") is None
    fake.gate.clear()
    pool.replenish("a")
    await settle()
    assert pool.starting() == 2
    task = pool.claim("a")
    assert task is not None and not task.done()
    fake.gate.set()
    assert (await task).container_id == "a-1"
    await settle()
    assert pool.container_ids() == {"a": ["a-2"]}
    assert pool.claim("b") is None
    await pool.close()
    assert fake.docker.removed == ["a-2"]  # a claimed standby belongs to its claimer


async def test_reap_drops_idle_and_dead_standbys(fake: Any) -> None:
    pool = make(fake, idle_timeout_s=3600, standby_per_image=1, max_standby=2)
    pool.replenish("a")
    pool.replenish("b")
    await settle()
    fake.docker.running.discard("a-1")  # died
    await pool.reap()
    assert pool.container_ids() == {"b": ["b-2"]}
    pool.settings.idle_timeout_s = 0.001
    await asyncio.sleep(0.01)
    await pool.reap()
    assert pool.container_ids() == {}
    assert sorted(fake.docker.removed) == ["a-1", "b-2"]


async def test_close_removes_standbys_still_starting_and_refuses_new_ones(fake: Any) -> None:
    pool = make(fake)
    fake.gate.clear()
    pool.replenish("a")
    await settle()
    await pool.close()
    assert fake.docker.removed == ["a-1"] and fake.docker.running == set()
    pool.replenish("a")
    assert pool.starting() == 0


async def test_abandoned_claim_is_removed(fake: Any) -> None:
    pool = make(fake)
    pool.replenish("a")
    await settle()
    task = pool.claim("a")
    assert task is not None
    pool.abandon(task)
    await pool.close()
    assert fake.docker.removed == ["a-1"]
