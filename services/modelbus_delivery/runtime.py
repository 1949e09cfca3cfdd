"""The at-least-once delivery runtime every modelbus consumer service runs on.

A consumer-group loop hands each record to a plain ``async`` handler that returns the
records to publish. The runtime publishes them, and only when every output of a record is
acknowledged does the partition's commit watermark move past it. Around that core:

- backpressure by pausing partitions (the consumer keeps polling, so a slow handler never
  costs the group membership);
- a bounded retry budget per record; a record whose handler keeps failing, or raises
  ``PoisonRecord``, is quarantined (the service's ``Quarantine`` says what to publish,
  typically an error answer and a DLQ copy) and the partition goes on;
- an output the broker refuses for good (too large, invalid) is replaced by what the
  service's ``Quarantine`` offers instead; a broker that is down is waited for;
- records the Kafka client itself cannot decode are skipped and reported;
- rebalances that answer nothing twice: before partitions are given up, the records in
  flight finish (bounded) and are committed; a partition that comes straight back keeps
  its unfinished records and resumes after them, one that goes elsewhere is forgotten
  whether or not its last commit succeeded, and commits only ever name partitions still
  assigned;
- two lanes, when ``bulk_topics`` names some of the topics: records of the other
  (interactive) topics are taken first, and the bulk topics' records are started only
  within the room ``LanePolicy`` gives them (``LaneFetch``).
  Partition ``i`` of every topic goes to one member (``PairedStickyAssignor``), so a
  key's records in both lanes reach the same member.
  The bulk lane's outputs may go through a writer of their own (``bulk_writer``), so
  that an interactive answer never waits behind bulk answers in one produce request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from modelbus_contract.lanes import Lane

from .closing import close_quietly
from .fetch_pacing import FetchPacing, apply_prefetch_backoff, pace
from .kafka_config import KafkaOptions, as_options
from .lane_fetch import LANE_PREFETCH_BACKOFF_S, LaneFetch
from .lane_policy import CURRENT_LANE, LanePolicy, LaneShares
from .logs import get_logger
from .paired_assignor import assignment_strategies
from .poison import Batch, getmany_skipping_poison
from .poll_context import ALONE_IN_POLL
from .records import RECORDS_PER_TURN, Inbound, Outgoing, PoisonRecord
from .retry import Backoff
from .watermarks import OffsetTracker
from .writer import PublishFailed, TopicWriter

log = get_logger("delivery")

Handler = Callable[[Inbound], Awaitable[list[Outgoing]]]


class Quarantine(Protocol):
    """Port: what a service publishes when a record or one of its outputs cannot go on."""

    def poisoned(self, record: Inbound, reason: str) -> list[Outgoing]:
        """The handler raised PoisonRecord or failed for the whole retry budget."""
        ...

    def unpublishable(
        self, record: Inbound, out: Outgoing, refused: PublishFailed
    ) -> list[Outgoing]:
        """``out`` was refused for good by the broker or the client: ``refused`` says why
        (its type tells a record too large, ``RecordTooLarge``, from other refusals)."""
        ...

    def undecodable(self, topic: str, partition: int, offset: int, reason: str) -> list[Outgoing]:
        """The Kafka client could not decode the record at that position."""
        ...


@dataclass(frozen=True)
class RuntimeConfig:
    """How one service consumes."""

    name: str
    topics: tuple[str, ...]
    group_id: str
    max_in_flight: int = 32
    ordered_by_key: bool = False  # records with the same key are handled one after another
    retry_budget: int = 3
    fetch_max_wait_ms: int = 5
    # While records stream at fetch_busy_rate or more, fetches wait this long (fetch_pacing).
    fetch_max_wait_busy_ms: int = 0
    fetch_busy_rate: float = 0.0
    max_partition_fetch_bytes: int = 1_048_576
    fetch_max_bytes: int = 52_428_800
    commit_coalesce_s: float = 0.05
    drain_timeout_s: float = 30.0
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    revoke_drain_s: float = 5.0  # how long a rebalance waits for records in flight
    # How soon partitions added to a topic, or a topic made again with another count, are
    # seen (a changed count makes the group rebalance). Kafka's own default is 5 minutes.
    metadata_max_age_ms: int = 30_000
    # The bulk lane (see lane_policy): these topics' records keep out of the interactive
    # ones' way.
    bulk_topics: tuple[str, ...] = ()
    bulk_share: float = 0.75
    bulk_min_share: float = 0.05
    lane_hold_s: float = 0.25



class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runtime: DeliveryRuntime) -> None:
        self._runtime = runtime

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._runtime.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._runtime.on_assigned(assigned)
        log.info(
            "partitions_assigned", service=self._runtime.config.name,
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
        )


class DeliveryRuntime:
    """Runs ``handler`` over ``config.topics`` with at-least-once delivery (see module doc)."""

    def __init__(
        self,
        kafka: str | KafkaOptions,
        config: RuntimeConfig,
        handler: Handler,
        quarantine: Quarantine,
        writer: TopicWriter,
        backoff: Backoff | None = None,
        *,
        published: Callable[[Outgoing], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        bulk_writer: TopicWriter | None = None,
    ) -> None:
        self.config = config
        # Told of every record the broker acknowledged (e.g. to count dead letters).
        self._published = published
        self._options = as_options(kafka)
        self._handler = handler
        self._quarantine = quarantine
        self._writer = writer
        # The bulk lane's outputs go through a producer of their own (started and stopped
        # here): a producer has one request in flight per broker, and an interactive answer
        # must not wait behind a megabyte of bulk answers.
        self._bulk_writer = bulk_writer
        self._bulk_writer_started = False
        self._backoff = backoff or Backoff(0.2, 5.0)
        self.tracker = OffsetTracker()
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._revoked: set[TopicPartition] = set()  # until the next assignment says
        self._last_by_key: dict[Hashable, asyncio.Task[None]] = {}
        self._commit_wanted = asyncio.Event()
        self._capacity = asyncio.Event()  # set whenever a record in flight finishes
        self._fetching: asyncio.Task[None] | None = None
        self._pacing = FetchPacing(
            config.fetch_max_wait_ms, config.fetch_max_wait_busy_ms, config.fetch_busy_rate
        )
        self._committing: asyncio.Task[None] | None = None
        self._bulk_topics = frozenset(config.bulk_topics)
        self.lanes = LanePolicy(LaneShares(
            config.max_in_flight, config.bulk_share, config.bulk_min_share, config.lane_hold_s
        ), clock)
        self.bulk_in_flight = 0
        self._lane_fetch = LaneFetch(self._bulk_topics, self.lanes)
        self.handled = 0  # records whose outputs are all acknowledged
        self.quarantined = 0
        self.last_poll: float | None = None  # wall-clock time of the last fetch that worked
        # Told after every rebalance (the partitions this member holds now).
        self.assignment_listeners: list[Callable[[], None]] = []

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Join the group and start consuming (the caller retries on KafkaError)."""
        c = self.config
        if self._bulk_writer is not None and not self._bulk_writer_started:
            await self._bulk_writer.start()
            self._bulk_writer_started = True
        self._pacing.reset()  # the new consumer asks for the quiet wait
        consumer = AIOKafkaConsumer(
            **self._options,
            group_id=c.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=c.fetch_max_wait_ms,
            max_partition_fetch_bytes=c.max_partition_fetch_bytes,
            fetch_max_bytes=c.fetch_max_bytes,
            session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=c.heartbeat_interval_ms,
            metadata_max_age_ms=c.metadata_max_age_ms,
            # A member that joins or leaves moves only the partitions it must: the others
            # keep theirs (and their models' warm containers).
            # Partition i of every topic on one member: a key's lanes meet there.
            partition_assignment_strategy=assignment_strategies(),
        )
        consumer.subscribe(list(c.topics), listener=_Rebalance(self))
        try:
            await consumer.start()
        except BaseException:
            await close_quietly(f"{c.name} consumer", consumer.stop)
            raise
        if self._bulk_topics:
            # Bulk records left buffered while their lane has no room must not hold back
            # the fetches of interactive ones.
            apply_prefetch_backoff(consumer, LANE_PREFETCH_BACKOFF_S)
        self._consumer = consumer
        self._fetching = asyncio.create_task(self._fetch_loop(), name=f"{c.name}-fetch")
        self._committing = asyncio.create_task(self._commit_loop(), name=f"{c.name}-commit")

    @property
    def running(self) -> bool:
        """Whether the fetch loop is alive."""
        return self._fetching is not None and not self._fetching.done()

    async def wait(self) -> None:
        """Until the runtime stops (a fetch loop that ends unexpectedly raises here)."""
        assert self._fetching is not None
        await self._fetching

    async def stop(self, drain_timeout_s: float | None = None) -> None:
        """Stop fetching, let records in flight finish, commit, leave the group."""
        name = self.config.name
        if self._fetching is not None:
            self._fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._fetching
        drain = self.config.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        if self._tasks and drain > 0:
            await asyncio.wait(self._tasks, timeout=drain)
        unfinished = [t for t in self._tasks if not t.done()]
        if unfinished:
            log.warning("delivery_abandoned", service=name, records=len(unfinished))
        background = [*unfinished, *([self._committing] if self._committing else [])]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        self._fetching = self._committing = None
        if self._consumer is not None:
            with contextlib.suppress(KafkaError, TimeoutError):
                async with asyncio.timeout(5):
                    await self.commit()
            await close_quietly(f"{name} consumer", self._consumer.stop)
            self._consumer = None
        if self._bulk_writer is not None and self._bulk_writer_started:
            await self._bulk_writer.stop()
            self._bulk_writer_started = False

    def assigned(self) -> set[TopicPartition]:
        """The partitions this member holds now."""
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    def partition_count(self, topic: str) -> int | None:
        """How many partitions ``topic`` has, as the consumer's metadata says (None: unknown)."""
        if self._consumer is None:
            return None
        partitions = self._consumer.partitions_for_topic(topic)
        return len(partitions) if partitions else None

    @property
    def in_flight(self) -> int:
        """Records being handled now."""
        return len(self._tasks)

    async def partition_lag(self) -> dict[TopicPartition, int]:
        """Per assigned partition, the records not yet committed: the broker's end offset
        as of the last fetch minus where the partition would be committed now (no request
        to the broker; a partition not fetched yet is left out)."""
        consumer = self._consumer
        if consumer is None:
            return {}
        lag: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            position = self.tracker.position(tp)
            if position is None:
                with contextlib.suppress(KafkaError, TimeoutError):  # known: no wait
                    position = await asyncio.wait_for(consumer.position(tp), 0.1)
            if end is not None and position is not None:
                lag[tp] = max(end - position, 0)
        return lag

    async def refresh_metadata(self) -> None:
        """Read the topics' metadata again now, e.g. after topics were made again: a
        partition count that changed rebalances the group, so that every partition of the
        new topic has a consumer (the old count may have come from a broker's default)."""
        if self._consumer is not None:
            await self._consumer._client.force_metadata_update()

    # -- commits ----------------------------------------------------------------------

    async def commit(self) -> None:
        """Commit every assigned partition's watermark that moved."""
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        positions = {
            tp: offset for tp, offset in self.tracker.committable().items() if tp in assigned
        }
        if not positions:
            return
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in positions.items()})
        self.tracker.mark_committed(dict(positions))

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Finish the records in flight (bounded by ``revoke_drain_s``) and commit them, so
        that a partition's next owner does not answer them a second time.

        Nothing is forgotten yet: a partition that comes straight back to this member
        (``on_assigned``; the sticky assignor keeps partitions where they are) keeps its
        unfinished records and resumes after them. One that goes elsewhere is forgotten
        then, and what had not finished is delivered again to its new owner.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.revoke_drain_s
        # Again until none is left: a record handed out just before the revocation starts
        # its task after this one began waiting.
        while running := [task for task in self._tasks if not task.done()]:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.info("revoke_drain_incomplete", service=self.config.name,
                         unfinished=len(running), after_s=self.config.revoke_drain_s)
                break
            await asyncio.wait(running, timeout=remaining)
        try:
            async with asyncio.timeout(5):
                await self.commit()
        except (KafkaError, TimeoutError) as exc:
            # Their records are delivered again to the next owner: at-least-once.
            log.warning("commit_on_revoke_failed", service=self.config.name, error=repr(exc))
        finally:
            self._revoked.update(revoked)

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        """Forget the revoked partitions that went elsewhere; one that came back resumes
        after the last record this member started (its unfinished ones are still running),
        provided the group still holds this member's last commit — a broker that lost its
        data restarts the partition from the beginning instead."""
        revoked, self._revoked = self._revoked, set()
        back = [tp for tp in revoked if tp in assigned]
        gone = [tp for tp in revoked if tp not in assigned]
        consumer = self._consumer
        resume = self.tracker.next_offsets()
        for tp in back:
            ours = self.tracker.last_committed(tp)
            try:
                theirs = await consumer.committed(tp) if consumer is not None else None
            except KafkaError:
                theirs = None
            if consumer is None or tp not in resume or ours is None or theirs != ours:
                gone.append(tp)
                continue
            consumer.seek(tp, resume[tp])
        self.tracker.forget(gone)
        for listener in self.assignment_listeners:
            try:
                listener()
            except Exception:  # a listener's bug never stops the group's protocol
                log.exception("assignment_listener_failed", service=self.config.name)

    async def _commit_loop(self) -> None:
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            try:
                await self.commit()
            except KafkaError as exc:  # rebalancing or broker trouble: the next one retries
                log.warning("commit_failed", service=self.config.name, error=repr(exc))
            await asyncio.sleep(self.config.commit_coalesce_s)

    # -- consuming --------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            free = self.config.max_in_flight - len(self._tasks)
            if free <= 0:
                # Wait for the first record in flight to finish. Records the client has
                # prefetched stay buffered (its fetches are bounded by the fetch sizes);
                # only a long stall pauses the partitions and polls with nothing to take,
                # so that the consumer still counts as polling.
                self._capacity.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._capacity.wait(), 0.2)
                free = self.config.max_in_flight - len(self._tasks)
                if free <= 0:
                    consumer.pause(*consumer.assignment())
            elif consumer.paused():
                consumer.resume(*consumer.paused())
            try:
                if self._bulk_topics:
                    batch = await self._lane_fetch.fetch(
                        consumer, free, len(self._tasks), self.bulk_in_flight,
                        self.tracker.next_offsets(), self._undecodable, self._capacity,
                    )
                else:
                    batch = await getmany_skipping_poison(
                        consumer, self.tracker.next_offsets(), self._undecodable,
                        timeout_ms=200 if free > 0 else 0,
                        max_records=max(min(free, RECORDS_PER_TURN), 1),
                    )
            except KafkaError as exc:
                delay = self._backoff.next_delay()
                log.warning("fetch_failed", service=self.config.name, error=repr(exc),
                            retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            self.last_poll = time.time()
            pace(consumer, self._pacing, batch, self.config.name)
            self._dispatch_poll(batch)
            if batch:
                await asyncio.sleep(0)  # the chunk's handlers run before the next chunk

    def lane_of(self, topic: str) -> Lane:
        """The lane of a topic's records."""
        return "bulk" if topic in self._bulk_topics else "interactive"

    def _dispatch_poll(self, batch: Batch) -> None:
        """Start a task for every record of one poll."""
        alone = sum(len(records) for records in batch.values()) == 1
        for tp, records in batch.items():
            for record in records:
                self._dispatch(tp, Inbound.of(record), alone)

    def _dispatch(self, tp: TopicPartition, record: Inbound, alone: bool = False) -> None:
        self.tracker.started(tp, record.offset)
        previous = None
        if self.config.ordered_by_key:
            previous = self._last_by_key.get(record.key)
        bulk = tp.topic in self._bulk_topics
        # The record's task (and what it calls) sees its lane and whether it came alone;
        # the defaults (interactive, not alone) cost nothing to keep.
        lane = CURRENT_LANE.set("bulk") if bulk else None
        lone = ALONE_IN_POLL.set(True) if alone else None
        try:
            task = asyncio.create_task(self._process(tp, record, previous))
        finally:
            if lone is not None:
                ALONE_IN_POLL.reset(lone)
            if lane is not None:
                CURRENT_LANE.reset(lane)
        if self.config.ordered_by_key:
            self._last_by_key[record.key] = task
            task.add_done_callback(functools.partial(self._forget_key, record.key))
        self._tasks.add(task)
        if bulk:
            self.bulk_in_flight += 1
            task.add_done_callback(self._bulk_finished)
        elif self._bulk_topics:
            self.lanes.interactive_seen()
            task.add_done_callback(self._interactive_finished)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._capacity.set()

    def _bulk_finished(self, task: asyncio.Task[None]) -> None:
        self.bulk_in_flight -= 1

    def _interactive_finished(self, task: asyncio.Task[None]) -> None:
        self.lanes.interactive_seen()

    def _forget_key(self, key: Hashable, task: asyncio.Task[None]) -> None:
        if self._last_by_key.get(key) is task:
            del self._last_by_key[key]

    async def _undecodable(self, tp: TopicPartition, offset: int, exc: BaseException) -> None:
        reason = f"the Kafka client cannot decode this record: {type(exc).__name__}: {exc}"[:900]
        log.error("record_quarantined", service=self.config.name, topic=tp.topic,
                  partition=tp.partition, offset=offset, reason=reason)
        self.tracker.started(tp, offset)
        for out in self._quarantine.undecodable(tp.topic, tp.partition, offset, reason):
            await self._publish_last_resort(out, self._writer_of(tp.topic))
        self.quarantined += 1
        self.tracker.finished(tp, offset)
        self._commit_wanted.set()

    async def _process(
        self, tp: TopicPartition, record: Inbound, previous: asyncio.Task[None] | None
    ) -> None:
        # Only a record whose outputs are all acknowledged counts as finished: one
        # cancelled by a stop keeps the watermark below it and is delivered again.
        if previous is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(previous)
        for out in await self._handle(record):
            await self._publish(record, out)
        self.handled += 1
        self.tracker.finished(tp, record.offset)
        self._commit_wanted.set()

    async def _handle(self, record: Inbound) -> list[Outgoing]:
        budget = max(self.config.retry_budget, 1)
        for attempt in range(1, budget + 1):
            try:
                return await self._handler(record)
            except asyncio.CancelledError:
                raise
            except PoisonRecord as exc:
                return self._poisoned(record, str(exc))
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"[:900]
                if attempt == budget:
                    log.exception("handler_failed", service=self.config.name,
                                  record=record.where, attempts=attempt)
                    return self._poisoned(record, f"failed {attempt} times: {reason}")
                delay = self._backoff.delay(attempt)
                log.warning("handler_retry", service=self.config.name, record=record.where,
                            attempt=attempt, error=reason, retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _poisoned(self, record: Inbound, reason: str) -> list[Outgoing]:
        self.quarantined += 1
        log.error("record_quarantined", service=self.config.name, record=record.where,
                  reason=reason[:300])
        return self._quarantine.poisoned(record, reason)

    def _writer_of(self, topic: str) -> TopicWriter:
        """The writer of a record's outputs: the bulk lane's own, if it has one."""
        if self._bulk_writer is not None and topic in self._bulk_topics:
            return self._bulk_writer
        return self._writer

    async def _publish(self, record: Inbound, out: Outgoing) -> None:
        """Publish an output of ``record`` through its lane's writer."""
        writer = self._writer_of(record.topic)
        try:
            await writer.send(out.topic, out.key, out.value, out.headers)
            self._tell_published(out)
            return
        except PublishFailed as exc:
            if exc.retriable:  # the broker is down: wait for it, this record is not at fault
                await self._publish_last_resort(out, writer)
                return
            refused = exc
        log.warning("output_refused", service=self.config.name, record=record.where,
                    topic=out.topic, reason=refused.reason[:300])
        for alternative in self._quarantine.unpublishable(record, out, refused):
            await self._publish_last_resort(alternative, writer)

    async def _publish_last_resort(self, out: Outgoing, writer: TopicWriter) -> None:
        """Publish ``out``; if refused for good, its stripped form; wait out a broker outage."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await writer.send(out.topic, out.key, out.value, out.headers)
                self._tell_published(out)
                return
            except PublishFailed as exc:
                if not exc.retriable:
                    if out.headers.get("dlq_value_omitted") is None:
                        out = out.stripped(f"the broker refused the record: {exc.reason}")
                        continue
                    log.error("output_dropped", service=self.config.name, topic=out.topic,
                              reason=exc.reason[:300])
                    return
                delay = self._backoff.delay(min(attempt, 8))
                log.warning("publish_waiting", service=self.config.name, topic=out.topic,
                            error=exc.reason[:300], retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)

    def _tell_published(self, out: Outgoing) -> None:
        if self._published is not None:
            try:
                self._published(out)
            except Exception as exc:  # an observer never fails a record
                log.warning("published_observer_failed", service=self.config.name,
                            error=f"{type(exc).__name__}: {exc}"[:300])
