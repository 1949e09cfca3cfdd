"""Several worker processes in one consumer group, through the real broker and Docker engine:
model affinity, a worker killed or stopped mid-stream, a worker joining mid-stream.

Requests are keyed by model name, so each model's requests sit on one partition of the
twelve, consumed by one worker: its containers run there only. A worker that leaves or joins
moves partitions; nothing is lost, and only a killed worker's unacknowledged work is answered
twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from aiokafka.partitioner import DefaultPartitioner
from mlflow import MlflowClient
from tests.support.echo_model import register_echo_model
from tests.support.kafka import group_offsets, read_end_offsets, read_topic
from tests.support.settings import answered_on_results_topic, isolated_settings
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus.wiring import build_catalog, build_discovery
from modelbus_contract.headers import header_dict
from modelbus_contract.keys import request_key
from modelbus_contract.settings import ModelbusSettings
from modelbus_worker.pool.containers import LABEL_KEY, LABEL_OWNER
from modelbus_worker.service import consumer_config

pytestmark = pytest.mark.integration

PARTITIONS = 12
MODELS = 6
SESSION_TIMEOUT_MS = 6000
MAX_IN_FLIGHT = 256
COLD_START_S = 900.0  # the echo model's dependency image may be built on first use
STREAM = 2400


# Partitions the models' keys land on: whichever halves two workers get, each serves some.
MODEL_PARTITIONS = (0, 1, 2, 6, 7, 8)


def _names_on(partitions: tuple[int, ...]) -> list[str]:
    """Model names whose keys Kafka's default partitioner puts on these partitions."""
    partitioner, every = DefaultPartitioner(), list(range(PARTITIONS))
    found: dict[int, str] = {}
    while len(found) < len(partitions):
        name = f"scale-{uuid.uuid4().hex[:8]}"
        partition = partitioner(request_key(name).encode(), every, every)
        if partition in partitions:
            found.setdefault(partition, name)
    return [found[p] for p in partitions]


@pytest.fixture(scope="module")
def echo_models(mlflow_tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    work = tmp_path_factory.mktemp("scale-out-models")
    names = _names_on(MODEL_PARTITIONS)
    for name in names:
        register_echo_model(mlflow_tracking_uri, name, work)
    return names


@dataclass
class Group:
    settings: ModelbusSettings
    models: list[str]
    log_dir: Path
    workers: list[WorkerProcess]

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.settings, self.log_dir / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker


class WorkerProcess:
    """``modelbus worker`` in a process of its own, its JSON log in a file."""

    def __init__(self, settings: ModelbusSettings, log_path: Path) -> None:
        env = {
            **os.environ,
            "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "MODELBUS_TOPIC_PREFIX": settings.topic_prefix,
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "MODELBUS_TOPIC_PARTITIONS": str(PARTITIONS),
            "MODELBUS_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "MODELBUS_WORKER_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
            "MODELBUS_WORKER_MAX_CONTAINERS": str(MODELS),
            "MODELBUS_WORKER_MAX_STANDBY": "0",  # every container is started for its model
            # Requests alone start containers: the placement counted is the requests' own.
            "MODELBUS_WORKER_PREPARE": settings.worker_prepare,
            "MODELBUS_LOG_LEVEL": "INFO",
        }
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelbus", "worker"], env=env,
            stdout=subprocess.DEVNULL, stderr=self._log,
        )
        self.owner = f"{socket.gethostname()}:{self.proc.pid}"

    def assigned(self) -> set[int] | None:
        """The partitions of the requests topic its last assignment gave it (None: none yet)."""
        latest: set[int] | None = None
        for line in self.log_path.read_bytes().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == "partitions_assigned":
                    latest = {int(p.rsplit("/", 1)[1]) for p in event["partitions"]}
        return latest

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()


@pytest.fixture
async def group(
    kafka_bootstrap: str, mlflow_tracking_uri: str, echo_models: list[str],
    docker_client: Any, tmp_path: Path,
) -> AsyncIterator[Group]:
    settings = answered_on_results_topic(isolated_settings(
        kafka_bootstrap, mlflow_tracking_uri, "scale"
    ).model_copy(update={"topic_partitions": PARTITIONS}))
    discovery, catalog = build_discovery(settings), build_catalog(settings)
    group = Group(settings, echo_models, tmp_path, [])
    async with contextlib.AsyncExitStack() as running:
        for service in (discovery, catalog):
            await service.start()
            running.push_async_callback(service.stop)
        try:
            async with AsyncModelbusClient(settings=settings) as client:
                await async_wait_for(
                    lambda: _in_catalog(client, echo_models), 120,
                    message="the echo models in the catalog",
                )
            yield group
        finally:
            for worker in group.workers:
                worker.stop()
            for container in _containers(docker_client, [w.owner for w in group.workers]):
                with contextlib.suppress(Exception):
                    container.remove(force=True)


async def _in_catalog(client: AsyncModelbusClient, models: list[str]) -> bool:
    names = {entry.name for entry in await client.catalog(timeout=10)}
    return set(models) <= names


def _containers(docker_client: Any, owners: list[str]) -> Iterator[Any]:
    for owner in owners:
        yield from docker_client.containers.list(
            all=True, filters={"label": f"{LABEL_OWNER}={owner}"}, ignore_removed=True
        )


def _models_by_owner(docker_client: Any, group: Group) -> dict[str, Counter[str]]:
    """Per worker, how many running containers each model version has."""
    out: dict[str, Counter[str]] = {}
    for worker in group.workers:
        running = docker_client.containers.list(
            filters={"label": f"{LABEL_OWNER}={worker.owner}", "status": "running"},
            ignore_removed=True,
        )
        out[worker.owner] = Counter(str(c.labels.get(LABEL_KEY, "")) for c in running)
    return out


async def _stable(workers: list[WorkerProcess]) -> None:
    """Until the live workers' last assignments split the partitions between them."""

    def split() -> bool:
        shares = [w.assigned() for w in workers]
        if any(share is None for share in shares):
            return False
        every = [p for share in shares for p in (share or ())]
        return sorted(every) == list(range(PARTITIONS))

    await async_wait_for(split, 60, message="the group's partitions split between its workers")


@dataclass
class Stream:
    """``STREAM`` requests over the models, 64 at a time; each answer checked."""

    client: AsyncModelbusClient
    models: list[str]
    answered: int = 0

    async def run(self) -> list[str]:
        limit = asyncio.Semaphore(64)
        cids = [uuid.uuid4().hex for _ in range(STREAM)]

        async def one(i: int) -> None:
            model = self.models[i % len(self.models)]
            rows = pa.table({"x": [float(i), i + 0.5]})
            async with limit:
                result = await self.client.predict(model, rows, timeout=COLD_START_S,
                                                   correlation_id=cids[i])
            assert result.column("x").to_pylist() == [float(i), i + 0.5]
            self.answered += 1

        await asyncio.gather(*(one(i) for i in range(STREAM)))
        return cids


async def _answers_per_request(settings: ModelbusSettings, cids: list[str]) -> Counter[str]:
    """How many answers each request got, once none can come any more.

    A worker publishes a request's answer before its offset is committed; once the
    workers' group has committed every partition of the requests topic up to its end,
    every answer, a second one too, is on the results topic, and no request is handed
    out again."""
    wanted, bootstrap = set(cids), settings.kafka_bootstrap_servers
    requests, group = settings.topics.requests, consumer_config(settings).group_id
    ends = await read_end_offsets(bootstrap, requests)  # the stream has sent everything

    async def all_committed() -> bool:
        return await group_offsets(bootstrap, group, requests, ends) == ends

    await async_wait_for(all_committed, 120,
                         message=f"the workers' group committed every request ({ends})")
    records = await read_topic(bootstrap, settings.topics.results)
    return Counter(cid for r in records if (cid := _answered(r)) in wanted)


def _answered(record: Any) -> str | None:
    """The correlation id a result answers (None for a progress notice: not an answer)."""
    headers = header_dict(record.headers)
    return headers.get("correlation_id") if headers.get("status") in ("ok", "error") else None


async def _warm_every_model(client: AsyncModelbusClient, models: list[str]) -> None:
    await asyncio.gather(*(
        client.predict(m, pa.table({"x": [0.0]}), timeout=COLD_START_S) for m in models
    ))


async def test_three_workers_serve_six_models_each_on_one_worker(
    group: Group, docker_client: Any
) -> None:
    workers = [group.start_worker() for _ in range(3)]
    await _stable(workers)
    async with AsyncModelbusClient(settings=group.settings) as client:
        await _warm_every_model(client, group.models)
        stream = Stream(client, group.models)
        cids = await stream.run()
    assert stream.answered == STREAM
    placed = _models_by_owner(docker_client, group)
    keys = [key for counts in placed.values() for key in counts.elements()]
    assert sorted(keys) == sorted(f"{m}/1" for m in group.models)  # 6 containers, not 18
    answers = await _answers_per_request(group.settings, cids)
    assert set(answers.values()) == {1}  # nothing restarted: nothing answered twice


async def test_a_killed_worker_loses_no_request(group: Group, docker_client: Any) -> None:
    workers = [group.start_worker() for _ in range(2)]
    await _stable(workers)
    async with AsyncModelbusClient(settings=group.settings) as client:
        await _warm_every_model(client, group.models)
        placed = _models_by_owner(docker_client, group)
        victim = next(w for w in workers if placed[w.owner])  # one that serves models
        survivor = next(w for w in workers if w is not victim)
        stream = Stream(client, group.models)
        running = asyncio.ensure_future(stream.run())
        await async_wait_for(lambda: stream.answered >= STREAM // 4, 120,
                             message="a quarter of the stream answered")
        victim.proc.send_signal(signal.SIGKILL)
        cids = await running
    assert stream.answered == STREAM
    await _stable([survivor])  # it has every partition
    moved = set(placed[victim.owner])
    assert moved <= set(_models_by_owner(docker_client, group)[survivor.owner])
    answers = await _answers_per_request(group.settings, cids)
    assert set(cids) == set(answers)
    twice = [cid for cid, n in answers.items() if n > 1]
    assert max(answers.values()) <= 2
    assert len(twice) <= MAX_IN_FLIGHT  # only what the killed worker had in flight


async def test_a_worker_joining_then_one_stopping_answer_everything_once(
    group: Group, docker_client: Any
) -> None:
    first = group.start_worker()
    await _stable([first])
    async with AsyncModelbusClient(settings=group.settings) as client:
        await _warm_every_model(client, group.models)
        stream = Stream(client, group.models)
        running = asyncio.ensure_future(stream.run())
        await async_wait_for(lambda: stream.answered >= STREAM // 4, 120,
                             message="a quarter of the stream answered")
        second = group.start_worker()
        await _stable([first, second])
        assert second.assigned()  # it took over partitions while requests flowed
        await async_wait_for(lambda: stream.answered >= STREAM // 2, 120,
                             message="half of the stream answered")
        first.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.proc.wait, 60) == 0  # drained and committed
        cids = await running
    assert stream.answered == STREAM
    await _stable([second])  # it has every partition
    answers = await _answers_per_request(group.settings, cids)
    assert set(cids) == set(answers)
    assert set(answers.values()) == {1}  # in-flight work finished before partitions moved


async def test_a_sharded_model_is_keyed_over_its_shards(
    group: Group, mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    name = f"scale-hot-{uuid.uuid4().hex[:6]}"
    register_echo_model(mlflow_tracking_uri, name, tmp_path)
    registry = MlflowClient(mlflow_tracking_uri, mlflow_tracking_uri)
    registry.set_registered_model_tag(name, "modelbus.shards", "3")
    workers = [group.start_worker() for _ in range(2)]
    await _stable(workers)
    async with AsyncModelbusClient(settings=group.settings) as client:

        async def sharded() -> bool:
            entries = [e for e in await client.catalog(timeout=10) if e.name == name]
            return [e.shards for e in entries] == [3]

        await async_wait_for(sharded, 60, message="the catalog entry with 3 shards")
        keys: set[str] = set()
        deadline = asyncio.get_running_loop().time() + 60
        while keys != {name, f"{name}#1", f"{name}#2"}:  # once the client has read the catalog
            assert asyncio.get_running_loop().time() < deadline, keys
            for i in range(6):
                rows = pa.table({"x": [float(i)]})
                result = await client.predict(name, rows, timeout=COLD_START_S)
                assert result.column("x").to_pylist() == [float(i)]
            keys = await _request_keys(group.settings, name)
            assert keys <= {name, f"{name}#1", f"{name}#2"}


async def _request_keys(settings: ModelbusSettings, model: str) -> set[str]:
    records = await read_topic(settings.kafka_bootstrap_servers, settings.topics.requests)
    return {
        (r.key or b"").decode() for r in records if header_dict(r.headers).get("model") == model
    }
