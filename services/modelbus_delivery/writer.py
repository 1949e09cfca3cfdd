"""Publishing records and waiting for the broker's acknowledgement, with a bounded retry.

Publishing goes through aiokafka directly (not FastStream's publisher) because the
catalog must send real tombstones (a null value), which FastStream encodes as ``b""``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from .closing import close_quietly
from .kafka_config import KafkaOptions, as_options
from .logs import get_logger
from .partitioner import keyed_partition
from .retry import Backoff

log = get_logger("writer")

DEFAULT_ATTEMPTS = 8

# The client's own size check and the broker's "message too large" / "record list too
# large" answers: the record can never go as it is.
_SIZE_REFUSALS = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)


class Sent(NamedTuple):
    """Where the broker put a record."""

    partition: int
    offset: int


class PublishFailed(Exception):
    """The broker refused a record for good, or kept failing for the whole retry budget."""

    def __init__(self, reason: str, *, retriable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retriable = retriable


class RecordTooLarge(PublishFailed):
    """The client or the broker refused the record for its size (never retriable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retriable=False)


def refusal(exc: KafkaError) -> PublishFailed:
    """The ``PublishFailed`` that a Kafka error refusing a record for good stands for."""
    reason = f"{type(exc).__name__}: {exc}"[:500]
    if isinstance(exc, _SIZE_REFUSALS):
        return RecordTooLarge(reason)
    return PublishFailed(reason, retriable=False)


class TopicWriter:
    """Publishes records and waits for the broker's acknowledgement of each."""

    def __init__(
        self,
        kafka: str | KafkaOptions,
        max_request_size: int = 1_048_576,
        *,
        linger_ms: int = 0,
        backoff: Backoff | None = None,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        self._options = as_options(kafka)
        self.max_request_size = max_request_size
        self._linger_ms = linger_ms
        self._backoff = backoff or Backoff(0.2, 5.0)
        self._attempts = attempts
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **self._options,
            acks="all",
            partitioner=keyed_partition,
            linger_ms=self._linger_ms,
            max_request_size=self.max_request_size,
            # Under load many records wait for one in-flight produce request: a batch of
            # the default 16 KiB would make every further send wait for that request.
            max_batch_size=max(16_384, min(self.max_request_size, 1_048_576)),
        )
        try:
            await producer.start()
        except BaseException:
            await close_quietly("producer", producer.stop)
            raise
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await close_quietly("producer", producer.stop)

    def _only_partition(self, topic: str) -> int | None:
        """0 for a topic known to have one partition (where the key cannot matter), so
        the key is not hashed for every record; None lets the partitioner choose."""
        assert self._producer is not None
        partitions = self._producer.client.cluster.partitions_for_topic(topic)
        return 0 if partitions is not None and len(partitions) == 1 else None

    async def send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> Sent:
        """Send one record (``value=None`` is a tombstone) and say where it went;
        PublishFailed says why not.

        Retriable broker errors are retried with backoff up to the writer's budget; a
        record the broker or the client refuses (too large: ``RecordTooLarge``, invalid)
        fails at once.
        """
        if self._producer is None:
            raise RuntimeError("TopicWriter.send before start")
        raw_key = key.encode() if isinstance(key, str) else key
        raw_headers = [
            (k, v.encode() if isinstance(v, str) else v) for k, v in (headers or {}).items()
        ]
        attempt = 0
        while True:
            attempt += 1
            try:
                sent = await self._producer.send(
                    topic, value=value, key=raw_key, headers=raw_headers,
                    partition=self._only_partition(topic),
                )
                metadata = await sent
                return Sent(metadata.partition, metadata.offset)
            except KafkaError as exc:
                if not exc.retriable:
                    raise refusal(exc) from exc
                reason = f"{type(exc).__name__}: {exc}"[:500]
                if attempt >= self._attempts:
                    raise PublishFailed(reason, retriable=True) from exc
                delay = self._backoff.delay(attempt)
                log.warning("publish_retry", topic=topic, error=reason, retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
            except (AssertionError, TypeError, ValueError) as exc:  # the client refuses it
                raise PublishFailed(f"{type(exc).__name__}: {exc}"[:500], retriable=False) from exc
