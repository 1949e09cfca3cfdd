"""Test helpers of the client tests: a broker of one's own to freeze, raw poison records."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.structs import RecordMetadata

from modelbus.stack import EmbeddedBroker, free_tcp_port

# ---------------------------------------------------------------------------------------
# A dedicated broker, frozen with SIGSTOP


@contextlib.contextmanager
def dedicated_broker(data_dir: Path) -> Iterator[EmbeddedBroker]:
    """A Tansu broker of the test's own on a free port; thawed and stopped at the end."""
    broker = EmbeddedBroker(free_tcp_port(), data_dir)
    broker.start()
    try:
        yield broker
    finally:
        thaw(broker)
        broker.stop()


def _group(broker: EmbeddedBroker) -> int:
    process = broker.process
    assert process is not None and process.pid is not None, "the broker is not running"
    return process.pid  # its own session: the process group has the leader's id


def freeze(broker: EmbeddedBroker) -> None:
    """SIGSTOP the broker (and anything it spawned): it keeps its sockets, answers nothing."""
    os.killpg(_group(broker), signal.SIGSTOP)


def thaw(broker: EmbeddedBroker) -> None:
    with contextlib.suppress(ProcessLookupError, AssertionError):
        os.killpg(_group(broker), signal.SIGCONT)


def unread_request_bytes(port: int) -> int:
    """Bytes clients sent to the broker on ``port`` that it has not read (requests in flight).

    Sums the receive queues of the broker's established TCP connections (/proc/net/tcp*).
    """
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, state, queues = fields[1], fields[3], fields[4]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    total += int(queues.split(":")[1], 16)
    return total


# ---------------------------------------------------------------------------------------
# Records aiokafka's producer would refuse to write


class _RawName(str):
    """A header name whose wire bytes are given as they are (not UTF-8 encoded)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@dataclass(frozen=True)
class Raw:
    """One record; a ``bytes`` header name goes on the wire as is (e.g. not UTF-8)."""

    value: bytes | None
    key: bytes | None = b"k"
    headers: Sequence[tuple[str | bytes, bytes | None]] = field(default_factory=tuple)


POISON_NAME = b"\xff\xfebad"


def poison(value: bytes | None = b"poison", key: bytes | None = b"k") -> Raw:
    """A record whose header name is not UTF-8: aiokafka's consumer cannot decode it."""
    return Raw(value, key, ((POISON_NAME, b"v"),))


async def produce_batch(
    bootstrap: str, topic: str, records: Sequence[Raw], partition: int = 0
) -> list[int]:
    """Write ``records`` as ONE record batch to ``topic``/``partition``; their offsets."""
    return await produce_batches(bootstrap, topic, [records], partition)


async def produce_each(
    bootstrap: str, topic: str, records: Sequence[Raw], partition: int = 0
) -> list[int]:
    """Write each record in a record batch of its own; their offsets."""
    return await produce_batches(bootstrap, topic, [[r] for r in records], partition)


async def produce_batches(
    bootstrap: str, topic: str, batches: Sequence[Sequence[Raw]], partition: int = 0
) -> list[int]:
    """Write each group of records as one record batch, in order; all their offsets.

    aiokafka's producer encodes header names with ``str.encode``; its pure-Python batch
    builder calls the name's own ``encode``, so batches are built with that builder and
    names given as bytes keep their bytes on the wire (the only patch, and only in tests).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    offsets: list[int] = []
    try:
        for records in batches:
            batch = producer.create_batch()
            batch._builder = _DefaultRecordBatchBuilderPy(
                2, 0, is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=0,
                batch_size=16 * 1024 * 1024,
            )
            for record in records:
                headers = [
                    (_RawName(name) if isinstance(name, bytes) else name, value)
                    for name, value in record.headers
                ]
                metadata = batch.append(
                    timestamp=None, key=record.key, value=record.value, headers=headers
                )
                assert metadata is not None, "the batch is full"
            sent = await producer.send_batch(batch, topic, partition=partition)
            first: RecordMetadata = await sent
            offsets.extend(first.offset + i for i in range(len(records)))
    finally:
        await producer.stop()
    return offsets


def fetch_in_flight(consumer: Any) -> bool:
    """True while ``consumer`` has a fetch request sent and not answered.

    Read from aiokafka's fetcher (the set of nodes with a fetch in flight): observed only,
    to make sure the client is mid-fetch when the broker is frozen. A request the broker
    read before it froze leaves no trace in its socket, so this cannot be seen from outside.
    """
    return consumer is not None and bool(consumer._fetcher._in_flight)


def fetch_backing_off(consumer: Any) -> bool:
    """True while ``consumer``'s last fetch failed and its fetch task sleeps its retry backoff.

    That is where aiokafka's own ``stop()`` cancels the task and lets the CancelledError
    out (issue 12: a RequestTimedOutError, or a broker that went away). Observed only.
    """
    if consumer is None:
        return False
    for task in consumer._fetcher._pending_tasks:
        awaiting = getattr(task.get_coro(), "cr_await", None)
        if not task.done() and getattr(awaiting, "__qualname__", "") == "sleep":
            return True
    return False
