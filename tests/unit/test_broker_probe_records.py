"""The probe counts the record batches of a fetch's record set (wire format v2)."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from modelbus.stack.broker_probe import TailBatches, count_batches


def batch(records: int, base_offset: int) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 20,
    )
    for i in range(records):
        builder.append(i, timestamp=None, key=None, value=b"v" * 30, headers=[])
    raw = bytearray(builder.build())
    raw[0:8] = base_offset.to_bytes(8, "big")
    return bytes(raw)


def test_batches_and_records_are_counted() -> None:
    records = batch(5, 0) + batch(1, 5) + batch(32, 6)
    assert count_batches(records) == TailBatches(batches=3, records=38)
    assert count_batches(records).records_per_batch == 38 / 3


def test_a_batch_cut_short_by_the_fetch_size_is_not_counted() -> None:
    whole, cut = batch(2, 0), batch(7, 2)
    assert count_batches(whole + cut[:-3]) == TailBatches(batches=1, records=2)
    assert count_batches(b"") == TailBatches(batches=0, records=0)
    assert TailBatches(0, 0).records_per_batch == 0.0
