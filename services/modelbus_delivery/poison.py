"""Fetching past records the Kafka client itself cannot decode.

aiokafka decodes record headers while it hands records out, and a header name that is not
UTF-8 (or a corrupt batch) makes ``getmany`` raise for the whole fetch, every time: the
consumer would never get past it. This module finds such a record with aiokafka's public
API only — rewind each partition to the offset after the last record handed out, read one
record at a time until the one that raises — reports it, and seeks past it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from .logs import get_logger

log = get_logger("poison")

OnPoison = Callable[[TopicPartition, int, BaseException], Awaitable[None] | None]
Batch = dict[TopicPartition, list[Any]]

_ISOLATION_WAIT_MS = 1000


async def getmany_skipping_poison(
    consumer: AIOKafkaConsumer,
    expected: Mapping[Any, int],
    on_poison: OnPoison,
    *,
    timeout_ms: int = 200,
    max_records: int | None = None,
) -> Batch:
    """``consumer.getmany`` that never raises for an undecodable record.

    ``expected`` maps each partition to the offset after the last record this caller
    received (partitions missing from it restart from their committed offset, or the
    beginning). Broker errors (``KafkaError``) still propagate. Each undecodable record is
    passed to ``on_poison(tp, offset, exception)`` once, then skipped.
    """
    try:
        batch: Batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return batch
    except KafkaError:
        raise
    except Exception as exc:  # the client failed while decoding what it fetched
        log.warning("fetch_undecodable", error=f"{type(exc).__name__}: {exc}"[:300])
    return await _isolate(consumer, expected, on_poison, max_records or 500)


async def _isolate(
    consumer: AIOKafkaConsumer, expected: Mapping[Any, int], on_poison: OnPoison, limit: int
) -> Batch:
    out: Batch = {}
    for tp in sorted(consumer.assignment()):
        await _rewind(consumer, tp, expected.get(tp))
        records: list[Any] = []
        while len(records) < limit:
            try:
                got = await consumer.getmany(tp, timeout_ms=_ISOLATION_WAIT_MS, max_records=1)
            except KafkaError:
                raise
            except Exception as exc:
                offset = await consumer.position(tp)
                result = on_poison(tp, offset, exc)
                if inspect.isawaitable(result):
                    await result
                consumer.seek(tp, offset + 1)
                break
            if not got.get(tp):
                break
            records.extend(got[tp])
        if records:
            out[tp] = records
    return out


async def _rewind(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int | None) -> None:
    if offset is None and consumer._group_id is not None:
        offset = await consumer.committed(tp)
    if offset is None:
        await consumer.seek_to_beginning(tp)
    else:
        consumer.seek(tp, offset)
