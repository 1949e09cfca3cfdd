"""``modelbus results``: a batch consumer writing the results topic to Parquet files.

It commits its consumer-group offsets only after a batch's files are on disk, so a
restart resumes where it stopped (at-least-once: a crash may repeat one batch). A record
that cannot be decoded, read or stored becomes a row of ``_errors/`` (see
``results_batches``); it never stops the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from modelbus_contract.settings import ModelbusSettings
from modelbus_contract.topic_plan import topic_spec
from modelbus_delivery.closing import CLOSE_TIMEOUT_S
from modelbus_delivery.kafka_config import connection_options
from modelbus_delivery.logs import get_logger
from modelbus_delivery.poison import advance, close_consumer, getmany_skipping_poison
from modelbus_delivery.retry import backoff_for
from modelbus_delivery.topics import provide_topics, start_consumer

from .results_batches import (
    ERRORS_DIR,
    UNWRITABLE,
    ResultRecord,
    build_tables,
    error_row,
    errors_table,
)

log = get_logger("results")

# With ``max_idle_s``, how long joining the consumer group may take before giving up.
GROUP_JOIN_ALLOWANCE_S = 30.0


def write_batch(
    out_dir: Path,
    records: Sequence[ResultRecord],
    *,
    max_rows: int | None = None,
    max_decoded_bytes: int | None = None,
) -> list[Path]:
    """One Parquet file per model version (and one for errors); each written atomically.

    A model version's table that Parquet still refuses is not written: its records become
    rows of the errors file instead.
    """
    limits = {k: v for k, v in (("max_rows", max_rows), ("max_decoded_bytes", max_decoded_bytes))
              if v is not None}
    batch = build_tables(records, **limits)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    written: list[Path] = []
    refused: list[dict[str, object]] = []
    for directory, table in batch.tables.items():
        if directory == ERRORS_DIR:
            continue
        try:
            written.append(_write(out_dir / directory, stamp, table))
        except (pa.ArrowException, ValueError, TypeError) as exc:
            reason = f"Parquet refused the table: {type(exc).__name__}: {exc}"
            log.error("results_table_unwritable", directory=directory, error=reason[:500])
            refused.extend(error_row(r, UNWRITABLE, reason) for r in batch.members[directory])
    errors = batch.tables.get(ERRORS_DIR)
    if refused:
        extra = errors_table(refused)
        errors = extra if errors is None else pa.concat_tables([errors, extra])
    if errors is not None:
        written.append(_write(out_dir / ERRORS_DIR, stamp, errors))
    return written


def _write(target_dir: Path, stamp: str, table: pa.Table) -> Path:
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = path.with_suffix(".parquet.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


class _ForgetRevoked(ConsumerRebalanceListener):  # type: ignore[misc]
    """Drops the expected offsets of revoked partitions (a new owner may have moved them)."""

    def __init__(self, expected: dict[TopicPartition, int]) -> None:
        self._expected = expected

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self._expected.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


async def write_results(
    settings: ModelbusSettings,
    out_dir: Path,
    group_id: str,
    batch_size: int = 1000,
    flush_interval_s: float = 5.0,
    max_idle_s: float | None = None,
) -> int:
    """Consume results into Parquet until stopped (or idle for ``max_idle_s``); records written.

    Records that cannot be decoded, read or stored are written to ``_errors/`` and counted.
    Stopping (or a failure) closes the consumer within a bound and never raises from it.
    """
    # Before subscribing: a broker that makes topics on first use would make it, unplanned.
    await provide_topics(connection_options(settings), [topic_spec(settings, "results")],
                         create=settings.kafka_create_topics)
    consumer = AIOKafkaConsumer(
        **connection_options(settings),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=max(settings.kafka_fetch_max_wait_ms, 100),
        max_partition_fetch_bytes=max(settings.max_message_bytes, 1_048_576),
    )
    expected: dict[TopicPartition, int] = {}
    consumer.subscribe([settings.topics.results], listener=_ForgetRevoked(expected))
    await start_consumer(consumer)
    backoff = backoff_for(settings)
    written = 0
    pending: list[ResultRecord] = []

    def undecodable(tp: TopicPartition, offset: int, exc: BaseException) -> None:
        reason = f"the Kafka client cannot decode this record: {type(exc).__name__}: {exc}"
        pending.append(ResultRecord.undecodable(tp.topic, tp.partition, offset, reason))

    last_flush = last_record = time.monotonic()
    unassigned = True
    try:
        while True:
            before = len(pending)
            try:
                batch = await getmany_skipping_poison(
                    consumer, expected, undecodable, timeout_ms=200, max_records=batch_size
                )
            except KafkaError as exc:
                delay = backoff.next_delay()
                log.warning("results_fetch_failed", error=repr(exc)[:300],
                            retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            advance(expected, batch)
            for records in batch.values():
                pending.extend(ResultRecord.of(r) for r in records)
            now = time.monotonic()
            if len(pending) > before:
                last_record = now
            if consumer.assignment():
                if unassigned:  # (re)joined the group: idleness counts from now
                    last_record, unassigned = max(last_record, now), False
                idle = max_idle_s is not None and now - last_record >= max_idle_s
            else:  # joining the group (seconds on some brokers) is not idleness
                unassigned = True
                idle = max_idle_s is not None and now - last_record >= max(
                    max_idle_s, GROUP_JOIN_ALLOWANCE_S
                )
            if pending and (len(pending) >= batch_size or now - last_flush >= flush_interval_s
                            or idle):
                paths = write_batch(out_dir, pending, max_rows=settings.max_request_rows,
                                    max_decoded_bytes=settings.max_decoded_bytes)
                await _commit(consumer)
                written += len(pending)
                log.info("results_written", records=len(pending), files=[str(p) for p in paths])
                pending, last_flush = [], now
            if idle and not pending:
                return written
    finally:
        await close_consumer("results consumer", consumer, CLOSE_TIMEOUT_S)


async def _commit(consumer: AIOKafkaConsumer) -> None:
    """Commit what was written; a failure (rebalance, broker away) repeats it after a restart."""
    try:
        await consumer.commit()
    except KafkaError as exc:
        log.warning("results_commit_failed", error=repr(exc)[:300])
