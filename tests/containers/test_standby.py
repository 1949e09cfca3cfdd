"""Standby runtimes: a new version is handed to a started container of its runtime image."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pyarrow as pa
import pytest

from modelbus_contract.errors import ModelFailed

from .conftest import Registry
from .waiting import wait_until

pytestmark = pytest.mark.integration

INPUT = pa.table({"x": [1.0, 2.0], "label": ["a", "b"]})


def gone(docker_client: Any, container_id: str) -> bool:
    return not docker_client.containers.list(
        all=True, filters={"id": container_id}, ignore_removed=True
    )


def standby_ids(pool: Any) -> list[str]:
    return [cid for ids in pool.starter.standbys.container_ids().values() for cid in ids]


async def a_standby(pool: Any) -> str:
    await wait_until(lambda: bool(standby_ids(pool)), 60, "a standby to be ready")
    [only] = standby_ids(pool)
    return only


async def test_new_version_is_handed_to_the_standby(
    pools: Any, registry: Registry, docker_client: Any
) -> None:
    name = registry.register("scale_model.py", "standby")
    assert registry.register("scale_model.py", "standby") == name  # version 2
    pool = pools()
    await pool.warm(name, "1")
    standby = await a_standby(pool)
    assert standby not in pool.running().values()

    t0 = time.perf_counter()
    answer = await pool.predict(name, "2", INPUT)
    cold = time.perf_counter() - t0
    print(f"\ncold start of a new version through a standby: {cold:.3f} s")
    assert answer.column("y").to_pylist() == [2.0, 4.0]
    assert pool.running()[f"{name}/2"] == standby
    assert cold < 5.0
    # A replacement standby is started for the next new version.
    replacement = await a_standby(pool)
    assert replacement != standby

    await pool.close()
    assert gone(docker_client, replacement) and gone(docker_client, standby)
    assert pool.starter.standbys.container_ids() == {}


async def test_idle_standby_is_removed(pools: Any, scale_model: str, docker_client: Any) -> None:
    pool = pools(idle_timeout_s=1.5)
    await pool.warm(scale_model, "1")
    standby = await a_standby(pool)
    await wait_until(lambda: standby_ids(pool) == [], 15, "the idle standby's removal")
    await wait_until(lambda: gone(docker_client, standby), 10, "the standby container's removal")


async def test_dead_standby_is_dropped_and_a_start_goes_on_without_it(
    pools: Any, registry: Registry, docker_client: Any
) -> None:
    name = registry.register("series_model.py", "deadstandby")
    registry.register("series_model.py", "deadstandby")
    pool = pools()
    await pool.warm(name, "1")
    standby = await a_standby(pool)
    await asyncio.to_thread(docker_client.containers.get(standby).kill)
    await wait_until(lambda: standby_ids(pool) == [], 15, "the reaper to drop the dead standby")
    assert (await pool.predict(name, "2", INPUT)).column("prediction").to_pylist() == [1.0, 2.0]
    assert pool.running()[f"{name}/2"] != standby


async def test_model_that_cannot_load_through_a_standby_is_model_failed(
    pools: Any, scale_model: str, registry: Registry, docker_client: Any
) -> None:
    broken = registry.register("broken_model.py", "broken-standby")
    pool = pools()
    await pool.warm(scale_model, "1")
    standby = await a_standby(pool)
    with pytest.raises(ModelFailed, match="weights file is missing") as failed:
        await pool.predict(broken, "1", INPUT)
    assert failed.value.message.startswith("model failed to load: ")
    # The traceback's tail says where, down to the model's own line.
    assert 'broken_model.py", line' in failed.value.message
    print(f"\n{failed.value.message}")
    # The standby it was handed is discarded (a failed import may have left things behind).
    await wait_until(lambda: gone(docker_client, standby), 10, "the used standby's removal")
    assert pool.start_failure(broken, "1") is not None
    assert list(pool.running()) == [f"{scale_model}/1"]
    assert (await pool.predict(scale_model, "1", INPUT)).num_rows == 2  # the pool goes on


async def test_no_standby_when_turned_off(pools: Any, scale_model: str) -> None:
    pool = pools(standby_per_image=0)
    await pool.warm(scale_model, "1")
    assert pool.starter.standbys.starting() == 0
    assert standby_ids(pool) == []
