"""Topic set-up and replay: the aiokafka adapters every consumer of modelbus shares.

Topics are made as the topic plan says (``modelbus_contract.topic_plan``), or, with
``MODELBUS_KAFKA_CREATE_TOPICS=false``, only required: a missing one is ``TopicsMissing``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from modelbus_contract.channels import TopicSpec
from modelbus_contract.errors import ModelbusError
from modelbus_contract.topic_plan import missing_topics_line

from .closing import cancel_and_wait, close_quietly
from .kafka_config import KafkaOptions, as_options
from .logs import get_logger
from .retry import Backoff
from .topic_admin import TopicsNotCreated, create_missing, require_topics

log = get_logger("kafka")
T = TypeVar("T")

# How often a guard that may not make topics repeats that they are missing.
MISSING_LOG_INTERVAL_S = 60.0


async def retry_until_connected(
    what: str, connect: Callable[[], Awaitable[T]], backoff: Backoff, **context: Any
) -> T:
    """Call ``connect`` until it succeeds, logging one line per failed attempt."""
    while True:
        try:
            return await connect()
        except (KafkaError, OSError) as exc:
            delay = backoff.next_delay()
            log.warning(
                f"{what}_unreachable", error=f"{type(exc).__name__}: {exc}",
                retry_in_s=round(delay, 2), **context,
            )
            await asyncio.sleep(delay)


async def ensure_topics(kafka: str | KafkaOptions, specs: list[TopicSpec]) -> None:
    """Make the topics that do not exist yet (no error when they already do), as ``specs``
    say; ``TopicsNotCreated`` when the broker refuses one."""
    _, refused = await create_missing(kafka, specs)
    if refused:
        raise TopicsNotCreated("the broker did not create " + "; ".join(
            f"{topic} ({why})" for topic, why in sorted(refused.items())
        ))


async def provide_topics(
    kafka: str | KafkaOptions, specs: list[TopicSpec], *, create: bool,
    reply_topics: tuple[str, ...] = (),
) -> None:
    """Make the missing topics of ``specs`` (``create``), or require that none is missing."""
    if create:
        await ensure_topics(kafka, specs)
    else:
        await require_topics(kafka, specs, reply_topics)


async def start_consumer(consumer: AIOKafkaConsumer) -> AIOKafkaConsumer:
    """Start ``consumer``; on failure close it before re-raising (no unclosed sockets)."""
    try:
        await consumer.start()
    except BaseException:
        await close_quietly("consumer", consumer.stop)
        raise
    return consumer


async def assign_all(
    consumer: AIOKafkaConsumer, topic: str, wait_s: float = 10.0
) -> list[TopicPartition]:
    """Assign every partition of ``topic`` to a group-less consumer (none: ``[]``).

    A topic created a moment ago may not be in the metadata yet: ask again until
    ``wait_s`` has passed.
    """
    partitions = consumer.partitions_for_topic(topic)
    deadline = time.monotonic() + wait_s
    while not partitions and time.monotonic() < deadline:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await asyncio.sleep(0.1)
    tps = [TopicPartition(topic, p) for p in sorted(partitions or ())]
    if tps:
        consumer.assign(tps)
    return tps


Batch = dict[TopicPartition, list[Any]]


async def replay(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], apply: Callable[[Batch], Any]
) -> dict[TopicPartition, int]:
    """Hand every record from the earliest offset to the current end to ``apply``.

    Batches may reach past that end (records produced meanwhile); the end offsets are
    returned for callers that must stop exactly there.
    """
    await consumer.seek_to_beginning(*tps)
    end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
        result = apply(await consumer.getmany(timeout_ms=200))
        if asyncio.iscoroutine(result):
            await result
    return end


async def read_to_end(kafka: str | KafkaOptions, topic: str) -> list[Any]:
    """Every record of ``topic`` from the earliest offset up to the end seen at the call."""
    consumer = AIOKafkaConsumer(**as_options(kafka), enable_auto_commit=False, fetch_max_wait_ms=5)
    await start_consumer(consumer)
    try:
        tps = await assign_all(consumer, topic, wait_s=1.0)
        if not tps:
            return []
        batches: list[Batch] = []
        end = await replay(consumer, tps, batches.append)
        records = [
            m for batch in batches for tp, msgs in batch.items() for m in msgs if m.offset < end[tp]
        ]
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        await close_quietly("consumer", consumer.stop)


class TopicGuard:
    """Notices that the broker lost its topics (an in-memory broker restarted) and repairs it.

    Every ``interval_s`` it looks at ``specs``' topics: one that is missing, or whose end
    offset went *down* (a topic's end offset never decreases, compaction included), means
    the broker came back without its data. The missing topics are then re-created and
    ``on_lost`` is awaited (e.g. to re-publish what the lost topic held). Broker errors
    are logged and retried at the same short interval, never with a long backoff.

    ``create=False`` (``MODELBUS_KAFKA_CREATE_TOPICS=false``): a missing topic is logged
    (``topics_missing``, with the command that makes it) and left to the operator;
    ``on_lost`` is awaited once every guarded topic is there again.
    """

    def __init__(
        self,
        kafka: str | KafkaOptions,
        specs: list[TopicSpec],
        on_lost: Callable[[], Awaitable[None]] | None = None,
        *,
        interval_s: float = 1.0,
        name: str = "topics",
        known_ends: Mapping[TopicPartition, int] | None = None,
        create: bool = True,
    ) -> None:
        self._kafka = kafka
        self._specs = specs
        self._create = create
        self.missing: list[str] = []  # guarded topics missing at the last check
        self._repair_due = False  # topics were lost and not all of them are back yet
        self._told: tuple[list[str], float] | None = None  # missing topics last logged, when
        self._on_lost = on_lost
        self.interval_s = interval_s
        self._name = name
        # End offsets seen so far (``known_ends``: the caller's, e.g. where it started reading).
        self._ends: dict[TopicPartition, int] = dict(known_ends or {})
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.losses = 0  # broker data losses noticed, for operators and tests
        self.last_ok: float | None = None  # time.monotonic() of the last check that worked

    def start(self, on_lost: Callable[[], Awaitable[None]] | None = None) -> None:
        """Guard from now on; ``on_lost``, when given, replaces the one of the constructor
        (the service's repair may belong to something built after the guard)."""
        if on_lost is not None:
            self._on_lost = on_lost
        self._task = asyncio.create_task(self._run(), name=f"{self._name}-topic-guard")

    def broker_seen_within(self, seconds: float) -> bool:
        """Whether a check reached the broker in the last ``seconds`` and found every
        guarded topic (a readiness signal: the guard looks every ``interval_s``)."""
        return (
            self.last_ok is not None and time.monotonic() - self.last_ok <= seconds
            and not self.missing
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self._close()

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await close_quietly("topic guard consumer", consumer.stop)

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(max(10.0, self.interval_s)):
                    lost = await self.check()
                self.last_ok = time.monotonic()
                if lost:
                    self.losses += 1
                    log.warning("broker_data_lost", service=self._name, topics=lost)
                    self._repair_due = True
                if self._repair_due:
                    await self._repair()
            except (KafkaError, OSError, TimeoutError) as exc:
                log.debug("topic_guard_check_failed", service=self._name,
                          error=f"{type(exc).__name__}: {exc}"[:300])
                await self._close()  # a fresh connection next time
            except ModelbusError as exc:  # topics the broker would not make: tried again
                log.error("topics_not_created", service=self._name, error=exc.message)
            await asyncio.sleep(self.interval_s)

    async def _repair(self) -> None:
        if self._create:
            await ensure_topics(self._kafka, self._specs)
        elif self.missing:  # the operator makes them: until then, say so now and then
            now = time.monotonic()
            if self._told is None or now - self._told[1] >= MISSING_LOG_INTERVAL_S or (
                self._told[0] != self.missing
            ):
                self._told = (list(self.missing), now)
                log.error("topics_missing", service=self._name, topics=self.missing,
                          error=missing_topics_line(self.missing))
            return
        self._told = None
        self._repair_due = False
        self._ends.clear()
        if self._on_lost is not None:
            await self._on_lost()

    async def check(self) -> list[str]:
        """The guarded topics found missing or with an end offset lower than before."""
        if self._consumer is None:
            consumer = AIOKafkaConsumer(**as_options(self._kafka), enable_auto_commit=False)
            self._consumer = await start_consumer(consumer)
        consumer = self._consumer
        await consumer._client.force_metadata_update()
        lost: list[str] = []
        known_missing, self.missing = set(self.missing), []
        for spec in self._specs:
            partitions = consumer.partitions_for_topic(spec.name)
            if not partitions:
                self.missing.append(spec.name)
                if spec.name not in known_missing:  # a loss is counted once
                    lost.append(spec.name)
                continue
            tps = [TopicPartition(spec.name, p) for p in sorted(partitions)]
            ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
            if any(end < self._ends.get(tp, 0) for tp, end in ends.items()):
                lost.append(spec.name)
            self._ends.update(ends)
        return lost
