"""Producing records that well-behaved clients cannot: header names that are not UTF-8.

aiokafka's producer takes header names as ``str`` and encodes them as UTF-8. Its
pure-Python batch builder calls ``name.encode(...)``, so a ``str`` whose ``encode``
returns arbitrary bytes puts exactly those bytes on the wire — what a hostile or buggy
producer in another language can send.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence

import aiokafka.producer.message_accumulator as accumulator
import aiokafka.producer.producer as producer_module
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.structs import RecordMetadata


class RawHeaderName(str):
    """A header name that encodes to ``raw`` whatever the encoding asked for."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawHeaderName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@contextlib.contextmanager
def python_batch_builder() -> Iterator[None]:
    """Producers build batches with aiokafka's pure-Python builder inside this block."""
    modules = (accumulator, producer_module)
    saved = [m.DefaultRecordBatchBuilder for m in modules]
    for module in modules:
        module.DefaultRecordBatchBuilder = _DefaultRecordBatchBuilderPy  # type: ignore[misc]
    try:
        yield
    finally:
        for module, builder in zip(modules, saved, strict=True):
            module.DefaultRecordBatchBuilder = builder  # type: ignore[misc]


async def send_any(
    producer: AIOKafkaProducer,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
) -> asyncio.Future[RecordMetadata]:
    """``producer.send`` to partition 0 (where the tests look for what follows), also for a
    record with neither key nor value (which aiokafka's ``send`` refuses but the protocol
    allows and other clients send): that one goes straight to the producer's batch
    accumulator."""
    if key is not None or value is not None:
        return await producer.send(topic, value, key=key, headers=list(headers), partition=0)
    await producer.client._wait_on_metadata(topic)
    future: asyncio.Future[RecordMetadata] = await producer._message_accumulator.add_message(
        TopicPartition(topic, 0), None, None, 30.0, timestamp_ms=None, headers=list(headers)
    )
    return future


async def produce_raw(
    bootstrap: str,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: Sequence[tuple[str | bytes, bytes]] = (),
) -> RecordMetadata:
    """Send one record whose header names may be any bytes; wait for the acknowledgement."""
    named = [(RawHeaderName(k) if isinstance(k, bytes) else k, v) for k, v in headers]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        with python_batch_builder():
            future = await send_any(producer, topic, value, key=key, headers=named)
        return await future
    finally:
        await producer.stop()
