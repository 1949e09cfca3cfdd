"""Routes results from the results topic to the requests waiting for them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer

from modelbus_contract.headers import header_dict
from modelbus_delivery.topics import TopicSpec, assign_all, ensure_topics, start_consumer


class ResultsListener:
    """Reads a results topic from its end (no consumer group) and resolves futures by id."""

    def __init__(self, bootstrap_servers: str, topic: str, fetch_max_wait_ms: int = 5) -> None:
        self._servers = bootstrap_servers
        self._topic = topic
        self._fetch_wait = fetch_max_wait_ms
        self._waiting: dict[str, asyncio.Future[tuple[dict[str, str], bytes | None]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await ensure_topics(self._servers, [TopicSpec(self._topic)])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=self._fetch_wait,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await start_consumer(consumer)
        try:
            tps = await assign_all(consumer, self._topic)
            await consumer.seek_to_end(*tps)
            for tp in tps:  # resolve the end positions now, before any request is sent
                await consumer.position(tp)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="modelbus-results")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        for future in self._waiting.values():
            future.cancel()

    def expect(self, correlation_id: str) -> asyncio.Future[tuple[dict[str, str], bytes | None]]:
        future = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        return future

    def forget(self, correlation_id: str) -> None:
        self._waiting.pop(correlation_id, None)

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    self._deliver(record)

    def _deliver(self, record: Any) -> None:
        headers = header_dict(record.headers)
        future = self._waiting.pop(headers.get("correlation_id", ""), None)
        if future is not None and not future.done():  # duplicates: the first answer wins
            future.set_result((headers, record.value))
