"""Many producers, two models, a worker restart: every request answered, none lost."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pyarrow as pa
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus.wiring import build_catalog, build_discovery, build_worker
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.headers import header_dict
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.topics import assign_all
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.service import WorkerService
from modelbus_worker.settings import ContainerSettings

from .conftest import InferenceStack, stack_settings

pytestmark = pytest.mark.integration


class ResultCollector:
    """Reads every result from the end of the results topic, counting answers per id."""

    def __init__(self, settings: ModelbusSettings) -> None:
        self._settings = settings
        self.answers: dict[str, list[dict[str, str]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ResultCollector:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers, fetch_max_wait_ms=5
        )
        await self._consumer.start()
        tps = await assign_all(self._consumer, self._settings.topics.results)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            for records in (await self._consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    h = header_dict(r.headers)
                    self.answers.setdefault(h["correlation_id"], []).append(h)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None and self._consumer is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()


def _request(model: str, version: str, cid: str, table: pa.Table) -> dict[str, object]:
    return {
        "value": to_ipc_stream(table),
        "key": cid.encode(),
        "headers": [
            ("model", model.encode()), ("model_version", version.encode()),
            ("correlation_id", cid.encode()),
        ],
    }


async def _produce(settings: ModelbusSettings, requests: list[dict[str, object]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for req in requests:
            await producer.send(settings.topics.requests, **req)  # type: ignore[arg-type]
        await producer.flush()
    finally:
        await producer.stop()


async def test_200_interleaved_requests_from_4_producers_all_answered_once(
    inference_stack: InferenceStack,
) -> None:
    settings = inference_stack.settings
    molecule, iris = inference_stack.demo
    plans: list[list[dict[str, object]]] = [[] for _ in range(4)]
    expected: dict[str, str] = {}
    for i in range(200):
        model = molecule if i % 2 == 0 else iris
        cid = f"load-{uuid.uuid4().hex}"
        expected[cid] = model.name
        plans[i % 4].append(_request(model.name, model.version, cid, pa.Table.from_pandas(
            model.sample, preserve_index=False
        )))
    async with ResultCollector(settings) as results:
        await asyncio.gather(*(_produce(settings, plan) for plan in plans))
        await async_wait_for(
            lambda: expected.keys() <= results.answers.keys(), 180, message="200 answers"
        )
    for cid, model in expected.items():
        first = results.answers[cid][0]
        assert first["status"] == "ok", first
        assert first["model"] == model
    assert Counter(len(a) for cid, a in results.answers.items() if cid in expected)[1] >= 190


async def test_worker_restarted_mid_stream_loses_no_request(
    kafka_bootstrap: str,
    mlflow_tracking_uri: str,
    inference_stack: InferenceStack,
    docker_client: object,
) -> None:
    settings = stack_settings(kafka_bootstrap, mlflow_tracking_uri)
    tricky = inference_stack.tricky
    discovery, catalog = build_discovery(settings), build_catalog(settings)
    await discovery.start()
    await catalog.start()

    def worker() -> WorkerService:
        return build_worker(
            settings, ContainerPool(ContainerSettings(), docker_client, mlflow_tracking_uri))

    first = worker()
    await first.start()
    try:
        await async_wait_for(
            lambda: f"{tricky.name}/{tricky.version}" in first.catalog.entries, 60,
            message="catalog entry",
        )
        cids = [f"restart-{i}-{uuid.uuid4().hex[:6]}" for i in range(60)]
        table = pa.table({"Molecule": ["sleep:0.05"]})
        async with ResultCollector(settings) as results:
            await _produce(settings, [_request(tricky.name, "1", c, table) for c in cids])
            await async_wait_for(lambda: len(results.answers) >= 10, 300, message="10 answers")
            await first.stop(drain_timeout_s=0)  # a crash: in-flight work is abandoned
            second = worker()
            await second.start()
            try:
                await async_wait_for(
                    lambda: set(cids) <= results.answers.keys(), 300, message="all 60 answers"
                )
            finally:
                await second.stop()
        assert all(results.answers[c][0]["status"] == "ok" for c in cids)
    finally:
        await catalog.stop()
        await discovery.stop()


async def test_a_cold_model_does_not_stall_a_warm_one(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    molecule, iris = inference_stack.demo
    pool = inference_stack.pool
    await pool._evict(f"{iris.name}/{iris.version}", "test: make it cold")
    cold = asyncio.create_task(client.predict(iris.name, iris.sample, timeout=600))
    warm_done_first = False
    for _ in range(5):
        await client.predict(molecule.name, molecule.sample, timeout=30)
        warm_done_first = warm_done_first or not cold.done()
    assert warm_done_first, "warm requests waited for the cold container"
    assert (await cold).num_rows == len(iris.sample)
