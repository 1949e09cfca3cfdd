"""Cutting inputs into chunks that fit a record, and the chunk headers of the contract."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelbus_client.chunking import (
    Chunk,
    body_limit,
    chunk_count,
    chunks_of,
    halves,
    rows_per_chunk,
    sized_chunks,
)
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.chunks import chunk_headers, read_chunk_headers
from modelbus_contract.headers import read_headers


def _table(rows: int, start: int = 0) -> pa.Table:
    return pa.table({"a": pa.array(range(start, start + rows), pa.float64()),
                     "s": [f"row-{i}" for i in range(start, start + rows)]})


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40), max_size=12),
    rows=st.integers(min_value=1, max_value=25),
)
def test_chunks_of_recuts_any_batches_into_fixed_row_ranges(sizes: list[int], rows: int) -> None:
    batches, start = [], 0
    for size in sizes:
        batches.extend(_table(size, start).to_batches() or [])
        start += size
    chunks = list(chunks_of(batches, rows))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert [c.start for c in chunks] == [i * rows for i in range(len(chunks))]
    assert all(c.rows == rows for c in chunks[:-1])
    assert sum(c.rows for c in chunks) == start
    assert len(chunks) == chunk_count(start, rows)
    joined = [v for c in chunks for v in c.table.column("a").to_pylist()]
    assert joined == [float(i) for i in range(start)]


def test_chunks_of_refuses_zero_rows() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(chunks_of(_table(3).to_batches(), 0))


@pytest.mark.parametrize("limit", [8 * 1024, 64 * 1024, 1024 * 1024])
def test_planned_chunks_fit_the_record_limit(limit: int) -> None:
    table = _table(200_000)
    rows, chunks = sized_chunks(table.to_batches(max_chunksize=7_000), limit, 10**6)
    sizes = [len(to_ipc_stream(c.table)) for c in chunks]
    assert max(sizes) <= body_limit(limit)
    assert min(sizes[:-1]) >= body_limit(limit) * 0.5  # and they are not needlessly small
    assert rows == rows_per_chunk(table, limit, 10**6)


def test_rows_per_chunk_respects_the_row_limit_and_empty_inputs() -> None:
    assert rows_per_chunk(_table(5000), 1024 * 1024, 100) == 100
    assert rows_per_chunk(_table(0), 1024 * 1024, 100) == 100
    _, chunks = sized_chunks([], 1024 * 1024, 100)
    assert list(chunks) == []


def test_halves_keep_the_rows_and_their_positions() -> None:
    chunk = Chunk(7, 70, _table(5, 70))
    first, second = halves(chunk)
    assert (first.index, first.start, first.rows) == (0, 70, 2)
    assert (second.index, second.start, second.rows) == (1, 72, 3)
    assert second.table.column("a").to_pylist() == [72.0, 73.0, 74.0]


def test_chunk_headers_round_trip_and_are_echoed() -> None:
    sent = chunk_headers("job-1", 3, 10)
    view = read_headers([(k, v.encode()) for k, v in sent.items()])
    read = read_chunk_headers(view)
    assert read.problem is None
    assert read.echoed == {"chunk_id": "job-1", "chunk_index": "3", "chunk_count": "10"}
    assert read_chunk_headers(read_headers([("model", b"m")])).echoed == {}
    no_count = read_chunk_headers(read_headers([("chunk_id", b"j"), ("chunk_index", b"0")]))
    assert no_count == type(read)({"chunk_id": "j", "chunk_index": "0"}, None)


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([("chunk_index", b"0")], "without 'chunk_id'"),
        ([("chunk_id", b" "), ("chunk_index", b"0")], "'chunk_id' must be 1 to 256"),
        ([("chunk_id", b"x" * 257), ("chunk_index", b"0")], "'chunk_id' must be 1 to 256"),
        ([("chunk_id", b"j")], "'chunk_index' must be a whole number"),
        ([("chunk_id", b"j"), ("chunk_index", b"-1")], "'chunk_index' must be a whole number"),
        ([("chunk_id", b"j"), ("chunk_index", "\u0661".encode())], "'chunk_index' must be"),
        ([("chunk_id", b"j"), ("chunk_index", b"1" * 13)], "'chunk_index' must be"),
        ([("chunk_id", b"j"), ("chunk_index", b"2"), ("chunk_count", b"2")],
         "'chunk_count' must be a whole number greater"),
        ([("chunk_id", b"j"), ("chunk_index", b"0"), ("chunk_count", b"x")],
         "'chunk_count' must be"),
    ],
)
def test_unusable_chunk_headers_are_a_problem_and_not_echoed(
    headers: list[tuple[str, bytes]], problem: str
) -> None:
    read = read_chunk_headers(read_headers(headers))
    assert read.echoed == {}
    assert read.problem is not None and problem in read.problem


@given(st.dictionaries(st.sampled_from(["chunk_id", "chunk_index", "chunk_count"]),
                       st.binary(max_size=20)))
def test_any_chunk_headers_are_either_echoed_whole_or_a_problem(raw: dict[str, bytes]) -> None:
    view = read_headers(list(raw.items()))
    read = read_chunk_headers(view)
    if read.problem is None:  # usable: every readable one is echoed as it came
        assert read.echoed == {k: view.values[k] for k in raw if k in view.values}
    else:
        assert read.echoed == {}
