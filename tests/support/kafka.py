"""Read and write topics directly, without consumer groups, for assertions in tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.structs import RecordMetadata

from modelbus_delivery.topics import assign_all

Headers = Iterable[tuple[str, bytes | str]]


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


async def produce(
    bootstrap: str,
    topic: str,
    value: bytes | str | None,
    *,
    key: bytes | str | None = None,
    headers: Headers = (),
    partition: int | None = None,
) -> RecordMetadata:
    """Send one record and wait for the broker's acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return await producer.send_and_wait(
            topic,
            _bytes(value),
            key=_bytes(key),
            headers=[(name, _bytes(v) or b"") for name, v in headers],
            partition=partition,
        )
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[Sequence[ConsumerRecord]], bool] | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 - a deadline spanning many awaits
) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the earliest offset, read without a consumer group.

    With ``until``, keep reading (the topic may not exist yet) until ``until(records)``
    is true, else raise ``TimeoutError`` listing what was read. Without it, return what
    the topic holds up to its end offsets at the time of the call.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        wait_s = timeout if until is not None else 1.0  # with ``until`` the topic may come later
        partitions = await assign_all(consumer, topic, wait_s=wait_s)
        if not partitions:
            if until is not None:
                raise TimeoutError(f"read_topic: topic {topic!r} did not appear")
            return records
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        while True:
            if until is not None and until(records):
                return records
            if until is None and all(await _caught_up(consumer, end)):
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(r.key, r.value[:200] if r.value else r.value) for r in records]
                raise TimeoutError(f"read_topic({topic!r}): condition not met; read {seen}")
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for tp_records in batch.values():
                records.extend(tp_records)
    finally:
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> list[bool]:
    return [await consumer.position(tp) >= offset for tp, offset in end.items()]



async def read_end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Per partition that holds records, one past its last record, as read from the topic.

    Not the broker's ListOffsets answer: the embedded broker answers the last record
    batch's base offset + 1 there, short of the end when that batch holds several records.
    """
    ends: dict[int, int] = {}
    for record in await read_topic(bootstrap, topic):
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends


async def group_offsets(
    bootstrap: str, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int | None]:
    """The offsets ``group`` has committed on ``topic``'s ``partitions`` (None: none yet),
    asked without joining the group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        await consumer.stop()
