"""Routes results from the results topic to the requests waiting for them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from modelbus_contract.channels import TopicSpec
from modelbus_contract.errors import InternalError, ModelbusError
from modelbus_contract.headers import read_headers
from modelbus_delivery.closing import CLOSE_TIMEOUT_S
from modelbus_delivery.fetch_pacing import FetchPacing, apply_fetch_wait, pace
from modelbus_delivery.kafka_config import KafkaOptions, as_options
from modelbus_delivery.logs import get_logger
from modelbus_delivery.poison import (
    advance,
    close_consumer,
    expected_positions,
    getmany_skipping_poison,
    stop_reader,
)
from modelbus_delivery.records import RECORDS_PER_TURN
from modelbus_delivery.retry import Backoff
from modelbus_delivery.topics import TopicGuard, assign_all, provide_topics, start_consumer

log = get_logger("client")

RESULT_HEADERS = (
    "status", "model", "model_version", "correlation_id", "error_code", "error_message",
    "content-type", "step", "elapsed_ms", "notice_interval_ms",
)
FINAL_STATUSES = frozenset({"ok", "error"})
# How long stopping waits for the reading task to end after cancelling it.
TASK_STOP_TIMEOUT_S = 1.0
# After this long with no request waiting, the reader stops fetching until one waits again.
IDLE_PAUSE_S = 1.0

Answer = tuple[dict[str, str], bytes | None]
# Told the headers of each progress notice (``status: preparing``) for a waiting request.
NoticeListener = Callable[[dict[str, str]], None]


class ClientClosed(ModelbusError):
    """The client was closed before the call could finish (nothing was answered)."""

    code = "client_closed"


class ResultsListener:
    """Reads a results topic from its end (no consumer group) and resolves futures by id.

    A progress notice (a record whose ``status`` is neither ``ok`` nor ``error``) goes to
    the request's notice listener, if it has one, and leaves it waiting for its result.
    A result whose headers cannot be read fails its request with ``InternalError``; a
    record the Kafka client cannot decode at all is logged and skipped (its request, which
    cannot be identified, ends at its timeout). ``stop`` fails every waiting request with
    ``ClientClosed`` and returns within ``TASK_STOP_TIMEOUT_S + close_timeout_s +
    CONNECTIONS_CLOSE_TIMEOUT_S`` (1 + 5 + 1 s by default); it never raises.

    Once no request has waited for ``idle_pause_s`` (``IDLE_PAUSE_S``; None: never), the
    reader pauses its partitions: it sends the broker no fetches until a request waits
    again, when it resumes them and reads on from where it stopped. Every fetch costs the
    embedded broker CPU whether it finds records or not (docs/operations/embedded-broker.md),
    so an idle client or gateway would otherwise keep it busy; answers that come while the
    reader is paused (late ones, or the alive records) are read once it resumes.
    """

    def __init__(
        self,
        kafka: str | KafkaOptions,
        topic: str,
        fetch_max_wait_ms: int = 5,
        *,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
        partitions: int = 1,
        pacing: FetchPacing | None = None,
        spec: TopicSpec | None = None,
        create_topic: bool = True,
        idle_pause_s: float | None = IDLE_PAUSE_S,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        # How the topic is made if this reader is the first to need it (``create_topic``;
        # else a missing topic is ``TopicsMissing``).
        self._spec = spec or TopicSpec(topic, partitions)
        self._create = create_topic
        # The fetch wait: ``fetch_max_wait_ms``, or the pacing's, which waits longer while
        # answers stream and less while a request waits (see modelbus_delivery.fetch_pacing).
        self._pacing = pacing or FetchPacing(fetch_max_wait_ms, 0, 0)
        self._close_timeout_s = close_timeout_s
        self._idle_pause_s = idle_pause_s
        self._idle_timer: asyncio.TimerHandle | None = None
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        self._notices: dict[str, NoticeListener] = {}
        self._expected: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._guard: TopicGuard | None = None
        self._closed = False
        self._settled = asyncio.Event()  # set whenever a waiting request leaves
        self.reads = 0  # reads of the broker that brought records (each one batch or more)

    @property
    def waiting(self) -> int:
        """Requests still waiting for their answer on this topic."""
        return len(self._waiting)

    @property
    def fetching(self) -> bool:
        """Whether the reader fetches from the broker (False while paused for being idle)."""
        consumer = self._consumer
        return consumer is not None and not consumer.paused()

    async def answered(self) -> None:
        """Return once no request waits on this topic (answered, forgotten or failed)."""
        while self._waiting:
            self._settled.clear()
            await self._settled.wait()

    async def start(self) -> None:
        await provide_topics(self._kafka, [self._spec], create=self._create,
                             reply_topics=(self._topic,))
        consumer = AIOKafkaConsumer(
            **as_options(self._kafka),
            enable_auto_commit=False,
            fetch_max_wait_ms=self._pacing.quiet_ms,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await start_consumer(consumer)
        try:
            tps = await assign_all(consumer, self._topic)
            await consumer.seek_to_end(*tps)
            # resolve the end positions now, before any request is sent
            self._expected = await expected_positions(consumer, tps)
        except BaseException:
            await close_consumer("results consumer", consumer, self._close_timeout_s)
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="modelbus-results")
        self._pace_waiting()  # none waits yet: the reader pauses once idle long enough
        # A broker that comes back empty (the embedded one keeps topics in memory) restarts
        # the topic's offsets at 0, below this reader's position: read the new topic from
        # its beginning, or the answers written there before it reaches that position are
        # never seen.
        self._guard = TopicGuard(
            self._kafka, [self._spec], self._reread, name="results-listener",
            known_ends=self._expected, create=self._create,
        )
        self._guard.start()

    async def _reread(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        # The topic made again may have other partitions than the lost one.
        tps = await assign_all(consumer, self._topic)
        if not tps:
            return
        await consumer.seek_to_beginning(*tps)
        self._expected = await expected_positions(consumer, tps)
        log.info("results_topic_rereading", topic=self._topic, partitions=len(tps))
        self._pace_waiting()  # the new assignment starts unpaused

    def close_waiting(self, why: str = "the client was closed before the result arrived") -> None:
        """Fail every waiting request with ``ClientClosed``; refuse new ones from now on."""
        self._closed = True
        self._notices.clear()
        waiting, self._waiting = self._waiting, {}
        self._settled.set()
        for future in waiting.values():
            if not future.done():
                future.set_exception(ClientClosed(why))
                future.exception()  # retrieved here: the request may be gone already

    async def stop(self) -> None:
        """Stop reading, never raising; waiting requests fail with ``ClientClosed``."""
        self.close_waiting()
        self._cancel_idle_timer()
        task, self._task = self._task, None
        if task is not None:
            await stop_reader("results reader", task, TASK_STOP_TIMEOUT_S)
        guard, self._guard = self._guard, None
        consumer, self._consumer = self._consumer, None
        closing = [guard.stop()] if guard is not None else []
        if consumer is not None:
            closing.append(close_consumer("results consumer", consumer, self._close_timeout_s))
        await asyncio.gather(*closing)  # side by side: the bound stays one close's

    def expect(
        self, correlation_id: str, on_notice: NoticeListener | None = None
    ) -> asyncio.Future[Answer]:
        if self._closed:
            raise ClientClosed("the client is closed")
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        if on_notice is not None:
            self._notices[correlation_id] = on_notice
        if len(self._waiting) == 1:
            self._pace_waiting()
        return future

    def forget(self, correlation_id: str) -> None:
        if self._waiting.pop(correlation_id, None) is not None:
            self._left()
        self._notices.pop(correlation_id, None)

    def _left(self) -> None:
        """A waiting request left (answered or forgotten)."""
        self._settled.set()
        if not self._waiting:
            self._pace_waiting()

    def _pace_waiting(self) -> None:
        """Ask for the awaiting wait from the next fetch while a request waits, and for
        the quiet one again once none does; fetch while one waits, and pause once none has
        for ``idle_pause_s``."""
        consumer = self._consumer
        if consumer is None:
            return
        wait = self._pacing.await_records(bool(self._waiting))
        if wait is not None:
            apply_fetch_wait(consumer, wait)
        self._cancel_idle_timer()
        if self._waiting:
            if paused := consumer.paused():
                consumer.resume(*paused)
        elif self._idle_pause_s is not None and not self._closed:
            self._idle_timer = asyncio.get_running_loop().call_later(
                self._idle_pause_s, self._pause_idle)

    def _pause_idle(self) -> None:
        self._idle_timer = None
        consumer = self._consumer
        if consumer is not None and not self._waiting:
            consumer.pause(*consumer.assignment())

    def _cancel_idle_timer(self) -> None:
        timer, self._idle_timer = self._idle_timer, None
        if timer is not None:
            timer.cancel()

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                batch = await getmany_skipping_poison(
                    consumer, self._expected, timeout_ms=1000, max_records=RECORDS_PER_TURN
                )
            except KafkaError as exc:
                delay = backoff.next_delay()
                log.warning("results_fetch_failed", topic=self._topic, error=repr(exc)[:300],
                            retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if batch:
                self.reads += 1
            pace(consumer, self._pacing, batch, "results-listener")
            advance(self._expected, batch)
            for records in batch.values():
                for record in records:
                    try:
                        self._deliver(record)
                    except Exception as exc:  # a result never stops the reader
                        log.error("result_undeliverable", topic=record.topic,
                                  partition=record.partition, offset=record.offset,
                                  error=f"{type(exc).__name__}: {exc}"[:300])
            if batch:
                await asyncio.sleep(0)  # the answered callers run (and send) first

    def _deliver(self, record: Any) -> None:
        view = read_headers(record.headers, RESULT_HEADERS)
        cid = view.get("correlation_id") or _text(record.key)
        status = view.get("status")
        if status and status not in FINAL_STATUSES and not view.problems:
            listener = self._notices.get(cid) if cid else None
            if listener is not None and cid in self._waiting:
                listener(view.values)
            return  # a notice: the result is still to come
        self._notices.pop(cid, None)
        future = self._waiting.pop(cid, None) if cid else None
        if future is not None:
            self._left()
        if future is None or future.done():  # not ours, or a duplicate: the first answer wins
            return
        if view.problems:
            log.error("result_unreadable", topic=record.topic, partition=record.partition,
                      offset=record.offset, correlation_id=cid, problems=list(view.problems))
            future.set_exception(InternalError(
                f"the result for correlation id {cid!r} cannot be read: "
                + "; ".join(view.problems)
            ))
            return
        future.set_result((view.values, record.value))


def _text(raw: bytes | None) -> str:
    try:
        return (raw or b"").decode("utf-8")
    except UnicodeDecodeError:
        return ""

