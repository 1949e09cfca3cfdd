"""Cutting a table, or a stream of record batches, into requests that fit a record (pure).

Chunk ``i`` always holds the rows ``[i * rows_per_chunk, (i + 1) * rows_per_chunk)`` of the
input, whatever the input's own batch sizes, so that a resumed run cuts the same chunks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from modelbus_contract.arrow_codec import table_to_ipc

# Room left in a record for its headers and Kafka's own framing.
RECORD_OVERHEAD_BYTES = 4096
# Rows encoded to estimate the size of one row.
SAMPLE_ROWS = 4096
# Share of the record limit a chunk is planned to fill: row sizes vary in string columns.
FILL = 0.8


@dataclass(frozen=True)
class Chunk:
    """Rows ``start`` to ``start + rows`` of the input, as one table."""

    index: int
    start: int
    table: pa.Table

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    @property
    def stop(self) -> int:
        return self.start + self.rows


def body_limit(max_message_bytes: int) -> int:
    """The largest request body that still fits in one record with its headers."""
    return max(1, max_message_bytes - RECORD_OVERHEAD_BYTES)


def rows_per_chunk(sample: pa.Table, max_message_bytes: int, max_rows: int) -> int:
    """How many rows a chunk gets so that its request fills about ``FILL`` of a record."""
    rows = min(sample.num_rows, SAMPLE_ROWS)
    if rows == 0:
        return max(1, min(max_rows, SAMPLE_ROWS))
    head = sample.slice(0, rows)
    fixed = len(table_to_ipc(head.slice(0, 0)))  # schema and framing
    per_row = max(1.0, (len(table_to_ipc(head)) - fixed) / rows)
    room = body_limit(max_message_bytes) * FILL - fixed
    return max(1, min(max_rows, int(room / per_row)))


def chunks_of(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[Chunk]:
    """The input re-cut into chunks of ``rows`` rows (the last one may be shorter)."""
    if rows < 1:
        raise ValueError(f"rows per chunk must be at least 1, not {rows}")
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    index = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(rows - pending_rows, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            pending_rows += take
            offset += take
            if pending_rows == rows:
                yield Chunk(index, index * rows, _one_batch(pending))
                index += 1
                pending, pending_rows = [], 0
    if pending_rows:
        yield Chunk(index, index * rows, _one_batch(pending))


def _one_batch(batches: list[pa.RecordBatch]) -> pa.Table:
    """One record batch (as a table): a request is one batch, sized as planned."""
    table = pa.Table.from_batches(batches)
    return table.combine_chunks() if len(batches) > 1 else table


def sized_chunks(
    batches: Iterable[pa.RecordBatch], max_message_bytes: int, max_rows: int
) -> tuple[int, Iterator[Chunk]]:
    """Rows per chunk, judged on the first batch, and the chunks of the whole input."""
    stream = iter(batches)
    first = next(stream, None)
    if first is None:
        return 1, iter(())
    rows = rows_per_chunk(pa.Table.from_batches([first]), max_message_bytes, max_rows)
    return rows, chunks_of(itertools.chain([first], stream), rows)


def record_batches(data: pa.Table | Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The record batches of a table, or the given ones."""
    if isinstance(data, pa.Table):
        return iter(data.to_batches())
    return iter(data)


def halves(chunk: Chunk) -> tuple[Chunk, Chunk]:
    """A chunk of two rows or more cut in two (indices 0 and 1: pieces of that chunk)."""
    first = chunk.rows // 2
    return (
        Chunk(0, chunk.start, chunk.table.slice(0, first)),
        Chunk(1, chunk.start + first, chunk.table.slice(first)),
    )


def chunk_count(total_rows: int | None, rows: int) -> int | None:
    """How many chunks an input of ``total_rows`` rows has (None when it is not known)."""
    if total_rows is None:
        return None
    return -(-total_rows // rows)
