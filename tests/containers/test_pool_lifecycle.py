"""Container lifecycle: restart after a kill, idle eviction, LRU cap, stale clean-up."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pyarrow as pa
import pytest

from modelbus_worker.pool.containers import LABEL_MANAGED, LABEL_OWNER

from .waiting import wait_until

pytestmark = pytest.mark.integration

INPUT = pa.table({"x": [1.0, 2.0], "label": ["a", "b"]})


def gone(docker_client: Any, container_id: str) -> bool:
    return not docker_client.containers.list(
        all=True, filters={"id": container_id}, ignore_removed=True
    )


async def test_killed_container_mid_stream_is_restarted(
    pools: Any, scale_model: str, docker_client: Any
) -> None:
    pool = pools()
    first = await pool.warm(scale_model, "1")
    answered: list[pa.Table] = []

    async def stream() -> None:
        for _ in range(200):
            answered.append(await pool.predict(scale_model, "1", INPUT))

    streaming = asyncio.create_task(stream())
    await wait_until(lambda: len(answered) >= 20, 30, "the stream to get going")
    await asyncio.to_thread(docker_client.containers.get(first).kill)
    await asyncio.wait_for(streaming, 120)  # every request answered, none raised
    assert len(answered) == 200
    second = pool.running()[f"{scale_model}/1"]
    assert second != first
    await wait_until(lambda: gone(docker_client, first), 10, "the dead container's removal")


async def test_dead_idle_container_is_noticed_and_replaced(
    pools: Any, scale_model: str, docker_client: Any
) -> None:
    pool = pools()
    first = await pool.warm(scale_model, "1")
    await asyncio.to_thread(docker_client.containers.get(first).kill)
    await wait_until(lambda: pool.running() == {}, 10, "the reaper to notice the dead container")
    assert (await pool.predict(scale_model, "1", INPUT)).num_rows == 2


async def test_idle_container_is_evicted(pools: Any, scale_model: str, docker_client: Any) -> None:
    pool = pools(idle_timeout_s=1.0)
    cid = await pool.warm(scale_model, "1")
    await wait_until(lambda: pool.running() == {}, 15, "idle eviction")
    await wait_until(lambda: gone(docker_client, cid), 10, "the idle container's removal")
    assert (await pool.predict(scale_model, "1", INPUT)).num_rows == 2  # starts again


async def test_lru_cap_evicts_least_recently_used(
    pools: Any, scale_model: str, sum_model: str, docker_client: Any
) -> None:
    pool = pools(max_containers=1)
    first = await pool.warm(scale_model, "1")
    await pool.warm(sum_model, "1")
    assert list(pool.running()) == [f"{sum_model}/1"]
    await wait_until(lambda: gone(docker_client, first), 10, "the evicted container's removal")

    pool2 = pools(max_containers=2)
    await pool2.warm(scale_model, "1")
    await pool2.warm(sum_model, "1")
    await pool2.predict(scale_model, "1", INPUT)  # sum_model is now the least recent
    pool2.settings.max_containers = 1
    await pool2.reap()
    assert list(pool2.running()) == [f"{scale_model}/1"]


async def test_stale_containers_of_dead_workers_are_removed(
    pools: Any, scale_model: str, docker_client: Any, base_image: str,
    container_settings: Any,
) -> None:
    """A killed worker's container goes, and with it the socket directory it had mounted;
    another socket directory (a live worker's container may be starting in it) stays."""
    import socket
    import uuid

    from modelbus_worker.pool.containers import SOCKET_MOUNT

    socket_dir, other = (container_settings.socket_root / f"test-{uuid.uuid4().hex[:8]}"
                         for _ in range(2))
    for path in (socket_dir, other):
        path.mkdir(parents=True)
    (socket_dir / "model.sock").write_bytes(b"")
    stale = await asyncio.to_thread(
        docker_client.containers.run, base_image, ["sleep", "600"], detach=True,
        network_mode="none", volumes={str(socket_dir): {"bind": SOCKET_MOUNT, "mode": "rw"}},
        labels={LABEL_MANAGED: "true", LABEL_OWNER: f"{socket.gethostname()}:999999999"},
    )
    try:
        pool = pools()
        await pool.warm(scale_model, "1")
        assert gone(docker_client, stale.id)
        assert (socket_dir.exists(), other.exists()) == (False, True)
    finally:
        if not gone(docker_client, stale.id):
            stale.remove(force=True)
        for path in (socket_dir, other):
            shutil.rmtree(path, ignore_errors=True)


async def test_listings_survive_containers_removed_while_listing(
    docker_client: Any, base_image: str, container_settings: Any
) -> None:
    """Another worker of this host removes its container between the engine's listing and
    anything read about it: stale clean-up and the running set go on without it."""
    import socket

    import docker

    from modelbus_worker.pool.containers import DockerContainers

    client = docker.from_env()
    containers = DockerContainers(client, container_settings)
    host = socket.gethostname()
    leaving = {
        "another worker's": {LABEL_MANAGED: "true", LABEL_OWNER: f"{host}:1"},
        "a dead worker's": {LABEL_MANAGED: "true", LABEL_OWNER: f"{host}:999999999"},
        "our own": {LABEL_MANAGED: "true", LABEL_OWNER: containers.owner},
    }
    started = [
        await asyncio.to_thread(
            docker_client.containers.run, base_image, ["sleep", "600"], detach=True,
            network_mode="none", labels=labels,
        )
        for labels in leaving.values()
    ]
    listing = client.api.containers

    def list_then_remove(*args: Any, **kwargs: Any) -> Any:
        found = listing(*args, **kwargs)
        for c in started:  # removed after the engine listed them
            client.api.remove_container(c.id, force=True)
        return found

    client.api.containers = list_then_remove  # type: ignore[method-assign]
    try:
        assert await asyncio.to_thread(containers.remove_stale) == 1
        started.clear()  # gone already: the next listing removes nothing more
        started.append(
            await asyncio.to_thread(
                docker_client.containers.run, base_image, ["sleep", "600"], detach=True,
                network_mode="none", labels=leaving["our own"],
            )
        )
        assert await asyncio.to_thread(containers.running_ids) == {started[0].id}
    finally:
        client.api.containers = listing  # type: ignore[method-assign]
        for c in started:
            if not gone(docker_client, c.id):
                c.remove(force=True)
        client.close()
