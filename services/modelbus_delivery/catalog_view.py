"""An in-memory view of the compacted catalog topic, kept current by a background reader.

Used by the worker (to resolve requests), by the client (``catalog()``/``watch_catalog()``)
and by tests. It reads every partition from the earliest offset without a consumer group,
so every instance sees the whole catalog.

It polls the broker every ``fetch_max_wait_ms`` (100 ms by default: an idle view costs the
broker a fetch per wait). A reader that must not act on a stale view — the worker, before it
answers that a model is unknown — calls :meth:`CatalogView.sync` first: it returns once the
view holds every record that was on the topic when it was called.

Records it cannot use — one the Kafka client cannot decode, a key that is missing or not
UTF-8, a value larger than ``max_value_bytes`` or not a valid ``CatalogEntry`` — are
logged and skipped; they never stop the reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from pydantic import ValidationError

from modelbus_contract.catalog_index import CatalogEntries
from modelbus_contract.channels import TopicSpec
from modelbus_contract.messages import CatalogEntry

from .closing import CLOSE_TIMEOUT_S
from .kafka_config import KafkaOptions, as_options, servers_of
from .logs import get_logger
from .poison import (
    advance,
    close_consumer,
    expected_positions,
    getmany_skipping_poison,
    rewind,
    stop_reader,
)
from .retry import Backoff
from .topics import assign_all, provide_topics, start_consumer

log = get_logger("catalog_view")

# Largest catalog value that is parsed; an entry is a few kilobytes.
MAX_VALUE_BYTES = 1024 * 1024
# How long stopping waits for the reading task to end after cancelling it.
TASK_STOP_TIMEOUT_S = 1.0
# How often an idle view asks the broker for new records, unless told otherwise.
FETCH_MAX_WAIT_MS = 100
# How long ``sync`` waits for the view to reach the topic's end, unless told otherwise: at
# least this, and at least a few of the view's fetch waits (the embedded broker answers a
# fetch when its wait ends).
SYNC_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CatalogChange:
    """One record of the catalog topic: an entry, or ``None`` for a removed version."""

    key: str
    entry: CatalogEntry | None


class CatalogView:
    """Latest catalog entry per ``name/version``; ``start`` returns once caught up.

    ``stop`` never raises (a cancellation of its caller propagates) and returns within
    ``TASK_STOP_TIMEOUT_S + close_timeout_s + CONNECTIONS_CLOSE_TIMEOUT_S`` (1 + 5 + 1 s by
    default); iterators from ``changes()`` then end.
    """

    def __init__(
        self,
        kafka: str | KafkaOptions,
        topic: str,
        fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
        *,
        max_value_bytes: int = MAX_VALUE_BYTES,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
        spec: TopicSpec | None = None,
        create_topic: bool = True,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        # How the topic is made if this view is the first to need it (``create_topic``);
        # else a missing topic is ``TopicsMissing``.
        self._spec = spec or TopicSpec(topic, compacted=True)
        self._create = create_topic
        self._fetch_wait = fetch_max_wait_ms
        self._max_value_bytes = max_value_bytes
        self._close_timeout_s = close_timeout_s
        self.entries = CatalogEntries()
        self.skipped = 0  # records that could not be used (undecodable, bad key or value)
        self._read_done = asyncio.Condition()  # notified after every read and at stop
        self._next_ends: asyncio.Task[dict[TopicPartition, int]] | None = None
        self._subscribers: list[asyncio.Queue[CatalogChange | None]] = []
        self._expected: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, catch_up_timeout_s: float = 30.0) -> None:
        # Before the consumer asks for the topic's metadata (which would make it on a
        # broker that makes topics on first use).
        await provide_topics(self._kafka, [self._spec], create=self._create)
        consumer = AIOKafkaConsumer(
            **as_options(self._kafka),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._fetch_wait,
        )
        await start_consumer(consumer)
        try:
            tps = await assign_all(consumer, self._topic)
            if not tps:
                raise RuntimeError(f"topic {self._topic} has no partitions")
            async with asyncio.timeout(catch_up_timeout_s):
                await self._catch_up(consumer, tps)
        except BaseException:
            await close_consumer("catalog view consumer", consumer, self._close_timeout_s)
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(consumer), name="catalog-view")
        log.info("catalog_view_ready", topic=self._topic, entries=len(self.entries),
                 kafka=servers_of(self._kafka))

    async def stop(self) -> None:
        """Stop reading and close the consumer within a bound; never raises."""
        task, self._task = self._task, None
        if task is not None:
            await stop_reader("catalog view reader", task, TASK_STOP_TIMEOUT_S)
        consumer, self._consumer = self._consumer, None
        async with self._read_done:
            self._read_done.notify_all()  # a sync() waiting for the reader gives up
        if consumer is not None:
            await close_consumer("catalog view consumer", consumer, self._close_timeout_s)
        for queue in self._subscribers:
            queue.put_nowait(None)  # ends the iterators of changes()

    async def reread(self) -> None:
        """Read the topic again from its earliest offset (the broker lost it and it is
        being rebuilt); the entries known so far are kept until replaced."""
        expected = await rewind(self._consumer)
        if expected is not None:
            self._expected = expected
            log.info("catalog_view_rereading", topic=self._topic)

    async def sync(self, timeout_s: float | None = None) -> bool:
        """Wait until the view holds every record that was on the topic when this was
        called (the end offsets are asked for after the call; concurrent callers share one
        request). False when the view is not running, the broker does not answer or
        ``timeout_s`` passes first."""
        consumer = self._consumer
        if consumer is None or self._task is None or self._task.done():
            return False
        if timeout_s is None:
            timeout_s = max(SYNC_TIMEOUT_S, 3 * self._fetch_wait / 1000)
        try:
            async with asyncio.timeout(timeout_s):
                ends = await asyncio.shield(self._end_offsets(consumer))
                async with self._read_done:
                    while True:
                        if self._consumer is not consumer:  # stopped meanwhile
                            return False
                        if await _reached(consumer, ends):
                            return True
                        await self._read_done.wait()
        except TimeoutError:
            log.warning("catalog_view_sync_timeout", topic=self._topic, timeout_s=timeout_s)
        except (KafkaError, ConsumerStoppedError) as exc:
            log.warning("catalog_view_sync_failed", topic=self._topic, error=repr(exc)[:300])
        return False

    def _end_offsets(
        self, consumer: AIOKafkaConsumer
    ) -> asyncio.Task[dict[TopicPartition, int]]:
        """The end offsets of a request not sent yet: callers that come before it is sent
        share it; a later caller gets the next one."""
        if self._next_ends is None:
            self._next_ends = asyncio.create_task(self._ask_end_offsets(consumer))
            # Its failure is each waiter's; one left by a caller that gave up is not logged.
            self._next_ends.add_done_callback(
                lambda t: None if t.cancelled() else t.exception()
            )
        return self._next_ends

    async def _ask_end_offsets(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        self._next_ends = None  # being sent: whoever asks from now on needs a newer answer
        ends: dict[TopicPartition, int] = await consumer.end_offsets(list(consumer.assignment()))
        return ends

    async def wait_until(
        self, predicate: Callable[[CatalogEntries], bool], timeout_s: float
    ) -> bool:
        """Wait until ``predicate(entries)`` holds; False when the deadline passes first."""
        try:
            async with asyncio.timeout(timeout_s), self._read_done:
                await self._read_done.wait_for(lambda: predicate(self.entries))
            return True
        except TimeoutError:
            return False

    def changes(self) -> AsyncIterator[CatalogChange]:
        """Every change from this call on (entries and tombstones), until ``stop``."""
        queue: asyncio.Queue[CatalogChange | None] = asyncio.Queue()
        self._subscribers.append(queue)
        return self._drain(queue)

    async def _drain(
        self, queue: asyncio.Queue[CatalogChange | None]
    ) -> AsyncIterator[CatalogChange]:
        try:
            while (change := await queue.get()) is not None:
                yield change
        finally:
            self._subscribers.remove(queue)

    async def _catch_up(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        """Apply every record from the earliest offset to the end offsets seen now."""
        await consumer.seek_to_beginning(*tps)
        self._expected = await expected_positions(consumer, tps)
        end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        while not await _reached(consumer, end):
            await self._read(consumer, timeout_ms=200)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                await self._read(consumer, timeout_ms=1000)
            except KafkaError as exc:
                delay = backoff.next_delay()
                log.warning("catalog_view_fetch_failed", topic=self._topic,
                            error=repr(exc)[:300], retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            backoff.reset()

    async def _read(self, consumer: AIOKafkaConsumer, timeout_ms: int) -> None:
        batch = await getmany_skipping_poison(
            consumer, self._expected, self._undecodable, timeout_ms=timeout_ms
        )
        advance(self._expected, batch)
        self._apply(batch)
        async with self._read_done:
            self._read_done.notify_all()

    def _undecodable(self, tp: TopicPartition, offset: int, exc: BaseException) -> None:
        self.skipped += 1

    def _apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        changes: list[CatalogChange] = []
        for records in batch.values():
            for record in records:
                change = self._change_of(record)
                if change is None:
                    self.skipped += 1
                    continue
                if change.entry is None:
                    self.entries.pop(change.key, None)
                else:
                    self.entries[change.key] = change.entry
                changes.append(change)
        for queue in self._subscribers:
            for change in changes:
                queue.put_nowait(change)

    def _change_of(self, record: Any) -> CatalogChange | None:
        """The change a record makes, or None (logged) when it cannot be used."""
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        try:
            key = record.key.decode("utf-8") if record.key is not None else None
        except UnicodeDecodeError:
            log.error("catalog_record_unreadable", **where, error="the key is not UTF-8",
                      key=repr(record.key[:80]))
            return None
        if not key:
            log.error("catalog_record_unreadable", **where, error="the record has no key")
            return None
        value = record.value
        if value is None:
            return CatalogChange(key, None)
        if len(value) > self._max_value_bytes:
            log.error("catalog_record_unreadable", **where, key=key,
                      error=f"the value is {len(value)} bytes; at most "
                            f"{self._max_value_bytes} are read")
            return None
        try:
            entry = CatalogEntry.model_validate_json(value)
        except (ValidationError, ValueError) as exc:
            log.error("catalog_record_unreadable", **where, key=key, error=str(exc)[:300])
            return None
        return CatalogChange(key, entry)


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether the consumer has read each partition up to its end offset in ``ends``."""
    for tp, end in ends.items():
        if tp in consumer.assignment() and await consumer.position(tp) < end:
            return False
    return True
