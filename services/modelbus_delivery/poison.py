"""Fetching past records the Kafka client itself cannot decode (poison records).

aiokafka decodes each record while ``getmany`` hands records out. A record it cannot decode
— a header *name* that is not UTF-8 (its C parser raises ``UnicodeDecodeError``), a batch
whose CRC does not match, a compression codec that is not installed — makes ``getmany``
raise for the whole call, and again on every later call: the consumer never gets past it.
Worse, partitions drained earlier in the failing call have already advanced their position,
so the records they handed out are lost with the exception.

``getmany_skipping_poison`` is a drop-in ``getmany`` that survives this with aiokafka's
public API only:

1. the caller says, per partition, the offset after the last record it received
   (``expected``);
2. on an exception from ``getmany`` that comes from decoding, every assigned, unpaused
   partition is rewound (``seek``) to its expected offset, and re-read one record at a
   time (``getmany(tp, max_records=1)``) up to the high watermark of its last fetch;
3. the record that raises is at ``await consumer.position(tp)``: it is logged once
   (``record_undecodable``, with topic, partition, offset and error), handed to
   ``on_poison(tp, offset, error)`` and skipped (``seek(tp, offset + 1)``);
4. the records read meanwhile (at most ``max_records`` in all) are returned as the batch.

Usage::

    expected: dict[TopicPartition, int] = {}        # filled as records arrive
    while True:
        batch = await getmany_skipping_poison(consumer, expected, report, timeout_ms=200)
        advance(expected, batch)
        ...

Limits, all of aiokafka's making: the records that follow an undecodable one *in the same
record batch* cannot be read either (aiokafka parses a batch from its first record whatever
the fetch offset), so each of them is reported and skipped in turn; and a partition missing
from ``expected`` is rewound to its committed offset (group consumers) or to the beginning,
so give every assigned partition an entry (``await expected_positions(...)``) when
re-reading is costly. A caller that ``seek``-s must update ``expected`` for that partition.
Errors that do not come from decoding (``KafkaError`` other than the three above,
cancellation) propagate unchanged.

The module also stops such reading loops within a bound: ``stop_reader`` (the task) and
``close_consumer`` (the consumer, finishing what aiokafka's interrupted ``stop()`` leaves).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, MutableMapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    CorruptRecordException,
    IllegalOperation,
    KafkaError,
    UnsupportedCodecError,
)

from .closing import close_quietly
from .logs import get_logger

log = get_logger("poison")

OnPoison = Callable[[TopicPartition, int, BaseException], Awaitable[None] | None]
Batch = dict[TopicPartition, list[Any]]

# While isolating, how long one single-record read waits for its fetch to come back.
ISOLATION_WAIT_MS = 1000
# Records read while isolating when the caller sets no ``max_records``.
ISOLATION_LIMIT = 500

# Closing the connections an interrupted consumer stop left open (no broker round trip).
CONNECTIONS_CLOSE_TIMEOUT_S = 1.0

_DECODING_KAFKA_ERRORS = (CorruptRecordException, UnsupportedCodecError)

# Per consumer and partition, the last run of offsets reported as undecodable: a caller whose
# expected offset still points into it (it received nothing after the run) resumes after it
# instead of being told about the same records again.
_skipped: weakref.WeakKeyDictionary[AIOKafkaConsumer, dict[TopicPartition, tuple[int, int]]] = (
    weakref.WeakKeyDictionary()
)


def is_undecodable(exc: BaseException) -> bool:
    """True for an error raised while decoding fetched records (not by the broker)."""
    if isinstance(exc, _DECODING_KAFKA_ERRORS):
        return True
    return isinstance(exc, Exception) and not isinstance(exc, KafkaError)


async def getmany_skipping_poison(
    consumer: AIOKafkaConsumer,
    expected: Mapping[Any, int],
    on_poison: OnPoison | None = None,
    *,
    timeout_ms: int = 200,
    max_records: int | None = None,
    partitions: Collection[TopicPartition] = (),
) -> Batch:
    """``consumer.getmany(timeout_ms=..., max_records=...)`` that skips undecodable records.

    ``partitions``: only these (default: every assigned one).
    ``expected`` maps each partition to the offset after the last record the caller received
    from it (or where the caller positioned it); it is only read. Each undecodable record is
    logged and passed to ``on_poison(tp, offset, exception)`` (sync or async) once, then
    skipped. Broker errors (``KafkaError``) and cancellation propagate.
    """
    try:
        batch: Batch = await consumer.getmany(
            *partitions, timeout_ms=timeout_ms, max_records=max_records
        )
        return batch
    except Exception as exc:
        if not is_undecodable(exc):
            raise
        log.debug("fetch_undecodable", error=_describe(exc))
    return await _isolate(consumer, expected, on_poison, max_records or ISOLATION_LIMIT)


def advance(expected: MutableMapping[TopicPartition, int], batch: Batch) -> None:
    """Record in ``expected`` the offset after the last record of each partition of ``batch``."""
    for tp, records in batch.items():
        if records:
            expected[tp] = records[-1].offset + 1


async def expected_positions(
    consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """The current position of each partition: an ``expected`` for a consumer just placed."""
    return {tp: await consumer.position(tp) for tp in tps}


async def rewind(consumer: AIOKafkaConsumer | None) -> dict[TopicPartition, int] | None:
    """Seek every assigned partition to its beginning (the broker lost the topic and it is
    being rebuilt); the new ``expected``, or None when there is nothing to rewind."""
    if consumer is None:
        return None
    tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
    if not tps:
        return None
    await consumer.seek_to_beginning(*tps)
    return await expected_positions(consumer, tps)


async def _isolate(
    consumer: AIOKafkaConsumer, expected: Mapping[Any, int], on_poison: OnPoison | None,
    limit: int,
) -> Batch:
    paused = consumer.paused()
    tps = sorted(
        (tp for tp in consumer.assignment() if tp not in paused),
        key=lambda tp: (tp.topic, tp.partition),
    )
    for tp in tps:
        await _rewind(consumer, tp, expected.get(tp))
    out: Batch = {}
    budget = limit
    for tp in tps:
        end = consumer.highwater(tp)  # of the last fetch, which brought the poison with it
        records: list[Any] = []
        while budget > 0 and end is not None:
            position = await consumer.position(tp)
            if position >= end:
                break
            try:
                got = await consumer.getmany(tp, timeout_ms=ISOLATION_WAIT_MS, max_records=1)
            except Exception as exc:
                if not is_undecodable(exc):
                    raise
                offset = await consumer.position(tp)
                await _report(consumer, tp, offset, exc, on_poison)
                consumer.seek(tp, offset + 1)
                budget -= 1
                continue
            fetched = got.get(tp, [])
            if not fetched:
                if await consumer.position(tp) == position:
                    break  # no answer in time: the caller's next call goes on from here
                continue  # moved past offsets without records (control batches, compaction)
            records.extend(fetched)
            budget -= len(fetched)
        if records:
            out[tp] = records
    return out


async def _rewind(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int | None) -> None:
    if offset is not None:
        start, end = _skipped.get(consumer, {}).get(tp, (0, 0))
        consumer.seek(tp, end if start <= offset < end else offset)
        return
    committed: int | None = None
    with contextlib.suppress(IllegalOperation):  # no consumer group: nothing committed
        committed = await consumer.committed(tp)
    if committed is None:
        await consumer.seek_to_beginning(tp)
    else:
        consumer.seek(tp, committed)


async def _report(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, exc: BaseException,
    on_poison: OnPoison | None,
) -> None:
    runs = _skipped.setdefault(consumer, {})
    start, end = runs.get(tp, (offset, offset))
    runs[tp] = (start, offset + 1) if end == offset else (offset, offset + 1)
    log.error("record_undecodable", topic=tp.topic, partition=tp.partition, offset=offset,
              error=_describe(exc))
    if on_poison is not None:
        result = on_poison(tp, offset, exc)
        if inspect.isawaitable(result):
            await result


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


# -- stopping a reader ----------------------------------------------------------------


async def stop_reader(what: str, task: asyncio.Task[Any], timeout_s: float) -> None:
    """Cancel a reading loop's task and wait for it at most ``timeout_s``; never raises.

    Whatever the task ended with is logged, not raised; a cancellation of the caller
    propagates.
    """
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        log.warning("close_abandoned", what=what, after_s=timeout_s)
    elif not task.cancelled() and (failure := task.exception()) is not None:
        log.warning("close_failed", what=what, error=_describe(failure))


async def close_consumer(what: str, consumer: AIOKafkaConsumer, timeout_s: float) -> None:
    """``consumer.stop()`` that never raises and returns within ``timeout_s`` + 1 s.

    aiokafka's ``stop()`` marks the consumer closed first; when it is interrupted (the
    CancelledError of a fetch it cancels, issue 12) or abandoned, it never closes its
    connections and its metadata task goes on reconnecting forever. Those are closed here.
    """
    if await close_quietly(what, consumer.stop, timeout_s):
        return
    client = getattr(consumer, "_client", None)  # aiokafka's connection pool
    if client is not None:
        await close_quietly(f"{what} connections", client.close, CONNECTIONS_CLOSE_TIMEOUT_S)
