"""An in-memory view of the compacted catalog topic, kept current by a background reader.

Used by the worker (to resolve requests), by the client (``catalog()``/``watch_catalog()``)
and by tests. It reads every partition from the earliest offset without a consumer group,
so every instance sees the whole catalog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from modelbus_contract.messages import CatalogEntry

from .logs import get_logger
from .topics import TopicSpec, assign_all, ensure_topics, replay, start_consumer

log = get_logger("catalog_view")


@dataclass(frozen=True)
class CatalogChange:
    """One record of the catalog topic: an entry, or ``None`` for a removed version."""

    key: str
    entry: CatalogEntry | None


class CatalogView:
    """Latest catalog entry per ``name/version``; ``start`` returns once caught up."""

    def __init__(self, bootstrap_servers: str, topic: str, fetch_max_wait_ms: int = 5) -> None:
        self._servers = bootstrap_servers
        self._topic = topic
        self._fetch_wait = fetch_max_wait_ms
        self.entries: dict[str, CatalogEntry] = {}
        self._changed = asyncio.Condition()
        self._subscribers: list[asyncio.Queue[CatalogChange]] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, catch_up_timeout_s: float = 30.0) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._fetch_wait,
        )
        await start_consumer(consumer)
        self._consumer = consumer
        try:
            await ensure_topics(self._servers, [TopicSpec(self._topic, compacted=True)])
            tps = await assign_all(consumer, self._topic)
            if not tps:
                raise RuntimeError(f"topic {self._topic} has no partitions")
            async with asyncio.timeout(catch_up_timeout_s):
                await replay(consumer, tps, self._apply)
        except BaseException:
            await consumer.stop()
            self._consumer = None
            raise
        self._task = asyncio.create_task(self._follow(), name="catalog-view")
        log.info("catalog_view_ready", topic=self._topic, entries=len(self.entries))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def wait_until(
        self, predicate: Callable[[dict[str, CatalogEntry]], bool], timeout_s: float
    ) -> bool:
        """Wait until ``predicate(entries)`` holds; False when the deadline passes first."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: predicate(self.entries))
            return True
        except TimeoutError:
            return False

    def changes(self) -> AsyncIterator[CatalogChange]:
        """Every change from this call on (entries and tombstones)."""
        queue: asyncio.Queue[CatalogChange] = asyncio.Queue()
        self._subscribers.append(queue)
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[CatalogChange]) -> AsyncIterator[CatalogChange]:
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            await self._apply(await self._consumer.getmany(timeout_ms=1000))

    async def _apply(self, batch: dict[TopicPartition, list[object]]) -> None:
        changes: list[CatalogChange] = []
        for records in batch.values():
            for record in records:
                key = (record.key or b"").decode("utf-8", "replace")  # type: ignore[attr-defined]
                value = record.value  # type: ignore[attr-defined]
                if value is None:
                    self.entries.pop(key, None)
                    changes.append(CatalogChange(key, None))
                    continue
                try:
                    entry = CatalogEntry.model_validate_json(value)
                except ValidationError as exc:
                    log.error("catalog_record_unreadable", key=key, error=str(exc)[:300])
                    continue
                self.entries[key] = entry
                changes.append(CatalogChange(key, entry))
        if not changes:
            return
        for queue in self._subscribers:
            for change in changes:
                queue.put_nowait(change)
        async with self._changed:
            self._changed.notify_all()
