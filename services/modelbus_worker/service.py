"""The worker service: a consumer-group member answering every request it is given.

Requests run concurrently (up to ``worker_max_in_flight``), so a model whose container is
still starting never stalls a warm one. A request's offset is committed only once its
answer is published: at-least-once, with the correlation id as the idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.structs import OffsetAndMetadata

from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.kafka_io import (
    TopicSpec,
    TopicWriter,
    ensure_topics,
    header_dict,
    retry_until_connected,
)
from modelbus_delivery.logs import get_logger
from modelbus_delivery.retry import backoff_for
from modelbus_delivery.watermarks import OffsetTracker

from .handler import Predictor, RequestHandler
from .replies import Outgoing, too_large_instead

log = get_logger("worker")


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: WorkerService) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._worker.commit()
        self._worker.tracker.forget(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=[tp.partition for tp in assigned])


class WorkerService:
    """Consumes the requests topic and publishes results, error results and DLQ copies."""

    def __init__(self, settings: ModelbusSettings, predictor: Predictor) -> None:
        self._settings = settings
        self._topics = settings.topics
        self._predictor = predictor
        self._writer = TopicWriter(
            settings.kafka_bootstrap_servers, max_request_size=settings.max_message_bytes
        )
        self.catalog = CatalogView(
            settings.kafka_bootstrap_servers, self._topics.catalog, settings.kafka_fetch_max_wait_ms
        )
        self._handler = RequestHandler(
            self.catalog.entries, predictor, self._topics, settings.max_message_bytes
        )
        self.tracker = OffsetTracker()
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._max_in_flight = settings.worker_max_in_flight
        self._commit_wanted = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self.answered = 0

    async def start(self) -> None:
        s = self._settings
        servers = s.kafka_bootstrap_servers
        backoff = backoff_for(s)
        specs = [
            TopicSpec(self._topics.requests, s.topic_partitions),
            TopicSpec(self._topics.results, s.topic_partitions),
            TopicSpec(self._topics.dlq),
            TopicSpec(self._topics.catalog, compacted=True),
        ]
        await retry_until_connected(
            "kafka", lambda: ensure_topics(servers, specs), backoff, bootstrap_servers=servers
        )
        await retry_until_connected("kafka", self._writer.start, backoff, bootstrap_servers=servers)
        await self.catalog.start()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            group_id=f"{s.topic_prefix}worker",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.kafka_fetch_max_wait_ms,
            max_partition_fetch_bytes=max(s.max_message_bytes, 1_048_576),
            fetch_max_bytes=max(4 * s.max_message_bytes, 52_428_800),
        )
        consumer.subscribe([self._topics.requests], listener=_Rebalance(self))
        await consumer.start()
        self._consumer = consumer
        self._loops = [
            asyncio.create_task(self._consume(), name="worker-consume"),
            asyncio.create_task(self._committer(), name="worker-commit"),
        ]
        log.info("worker_started", topic=self._topics.requests, catalog=len(self.catalog.entries))

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop fetching, let requests in flight finish and commit, then disconnect."""
        if self._loops:
            self._loops[0].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loops[0]
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=drain_timeout_s)
        for task in [*self._tasks, *self._loops[1:]]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._loops[1:], return_exceptions=True)
        self._loops = []
        if self._consumer is not None:
            with contextlib.suppress(KafkaError):
                await self.commit()
            await self._consumer.stop()
            self._consumer = None
        await self.catalog.stop()
        await self._writer.stop()
        await self._predictor.close()
        log.info("worker_stopped", answered=self.answered)

    async def run_forever(self) -> None:
        await self.start()
        try:
            await asyncio.gather(*self._loops)
        finally:
            await self.stop()

    async def commit(self) -> None:
        positions = self.tracker.committable()
        if not positions or self._consumer is None:
            return
        await self._consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in positions.items()})
        self.tracker.mark_committed(positions)

    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            # Backpressure by pausing, not by blocking: the consumer keeps polling, so a
            # long cold start never exceeds max_poll_interval and costs the group membership.
            free = self._max_in_flight - len(self._tasks)
            if free <= 0:
                consumer.pause(*consumer.assignment())
            elif consumer.paused():
                consumer.resume(*consumer.paused())
            batch = await consumer.getmany(timeout_ms=200, max_records=max(free, 1))
            for tp, records in batch.items():
                for record in records:
                    self.tracker.started(tp, record.offset)
                    task = asyncio.create_task(self._process(tp, record))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _process(self, tp: TopicPartition, record: Any) -> None:
        # Only an answered request counts as finished: one cancelled by a stop (or failing
        # in a way the handler could not answer) keeps the commit position below it, so it
        # is delivered again after a restart or rebalance.
        try:
            headers = header_dict(record.headers)
            outgoing = await self._handler.handle(record.key, record.value, headers)
            await self._publish(outgoing)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("request_unanswered", partition=tp.partition, offset=record.offset)
        else:
            self.answered += 1
            self.tracker.finished(tp, record.offset)
        finally:
            self._commit_wanted.set()

    async def _publish(self, outgoing: list[Outgoing]) -> None:
        backoff = backoff_for(self._settings)
        for out in outgoing:
            while True:
                try:
                    await self._writer.send(out.topic, out.key, out.value, out.headers)
                    break
                except MessageSizeTooLargeError:
                    out = too_large_instead(out, self._settings.max_message_bytes)
                    log.warning("answer_too_large", topic=out.topic,
                                correlation_id=out.headers.get("correlation_id"))
                except KafkaError as exc:  # broker trouble: keep the request until answered
                    delay = backoff.next_delay()
                    log.warning("publish_failed", error=repr(exc), retry_in_s=round(delay, 2))
                    await asyncio.sleep(delay)

    async def _committer(self) -> None:
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            try:
                await self.commit()
            except KafkaError as exc:  # rebalancing: the next completion commits again
                log.warning("commit_failed", error=repr(exc))
            await asyncio.sleep(0.05)  # coalesce bursts of completions into one commit
