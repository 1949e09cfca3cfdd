"""``modelbus results``: a batch consumer writing the results topic to Parquet files.

It commits its consumer-group offsets only after a batch's files are on disk, so a
restart resumes where it stopped (at-least-once: a crash may repeat one batch).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer

from modelbus_contract.headers import header_dict
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.logs import get_logger
from modelbus_delivery.topics import start_consumer

from .results_batches import ResultRecord, to_tables

log = get_logger("results")


def write_batch(out_dir: Path, records: list[ResultRecord]) -> list[Path]:
    """One Parquet file per model version (and one for errors); written atomically."""
    written = []
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for directory, table in to_tables(records).items():
        target_dir = out_dir / directory
        target_dir.mkdir(parents=True, exist_ok=True)
        path = target_dir / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        written.append(path)
    return written


async def write_results(
    settings: ModelbusSettings,
    out_dir: Path,
    group_id: str,
    batch_size: int = 1000,
    flush_interval_s: float = 5.0,
    max_idle_s: float | None = None,
) -> int:
    """Consume results into Parquet until stopped (or idle for ``max_idle_s``); records written."""
    consumer = AIOKafkaConsumer(
        settings.topics.results,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=max(settings.kafka_fetch_max_wait_ms, 100),
        max_partition_fetch_bytes=max(settings.max_message_bytes, 1_048_576),
    )
    await start_consumer(consumer)
    written = 0
    pending: list[ResultRecord] = []
    last_flush = last_record = time.monotonic()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=batch_size)
            now = time.monotonic()
            for records in batch.values():
                pending.extend(ResultRecord(header_dict(r.headers), r.value) for r in records)
                last_record = now if records else last_record
            idle = max_idle_s is not None and now - last_record >= max_idle_s
            if pending and (len(pending) >= batch_size or now - last_flush >= flush_interval_s
                            or idle):
                paths = write_batch(out_dir, pending)
                await consumer.commit()
                written += len(pending)
                log.info("results_written", records=len(pending), files=[str(p) for p in paths])
                pending, last_flush = [], now
            if idle and not pending:
                return written
    finally:
        await consumer.stop()
