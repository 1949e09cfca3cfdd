"""Bounded decoding of untrusted Arrow IPC streams: exact facts, the known bombs, fuzzing."""

from __future__ import annotations

import faulthandler
import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelbus_contract.arrow_bounds as arrow_bounds
from modelbus_contract.arrow_bounds import (
    ArrowStreamInvalid,
    ArrowStreamTooLarge,
    StreamFacts,
    cast_bytes,
    decode_table,
    inspect,
    inspect_stream,
)

MiB = 1 << 20
EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
CODECS = [None, "zstd", "lz4"]
HEADER_DICTIONARY, HEADER_RECORD_BATCH = 2, 3  # MessageHeader union members
ZSTD, LZ4 = 1, 0


# --- building streams -------------------------------------------------------------------------


def _stream(batches: list[pa.RecordBatch], schema: pa.Schema, **options: Any) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema, options=ipc.IpcWriteOptions(**options)) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def _table_stream(table: pa.Table, **options: Any) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=ipc.IpcWriteOptions(**options)) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _messages(data: bytes) -> list[ipc.Message]:
    return list(ipc.MessageReader.open_stream(pa.py_buffer(data)))


def _frames(data: bytes) -> list[bytes]:
    """The stream's messages, each re-framed (continuation marker, length, metadata, body)."""
    return [m.serialize().to_pybytes() for m in _messages(data)]


def _padded(n: int) -> int:
    return (n + 7) // 8 * 8


def _buffer_sizes(array: pa.Array) -> list[int]:
    """Sizes of the buffers pyarrow's writer emits for an unsliced array (children included)."""
    return [b.size for b in array.buffers() if b is not None]


def _fresh_table(n: int, seed: int) -> pa.Table:
    """A table of ``n`` rows whose arrays are all freshly built, never slices."""
    dictionary = pa.array([f"category-{k}" for k in range(7)])
    return pa.table(
        {
            "i": pa.array([seed + k for k in range(n)], pa.int64()),
            "f": pa.array([float(k) if k % 7 else None for k in range(n)], pa.float64()),
            "s": pa.array([f"v{k}" * (k % 5) if k % 3 else None for k in range(n)], pa.string()),
            "ls": pa.array([f"large{k}" for k in range(n)], pa.large_string()),
            "b": pa.array([k % 2 == 0 for k in range(n)], pa.bool_()),
            "d": pa.DictionaryArray.from_arrays(
                pa.array([k % 7 for k in range(n)], pa.int32()), dictionary
            ),
            "l": pa.array([list(range(k % 4)) for k in range(n)], pa.list_(pa.int16())),
            "st": pa.array(
                [{"x": k, "y": str(k)} for k in range(n)],
                pa.struct([("x", pa.int64()), ("y", pa.string())]),
            ),
            "n": pa.nulls(n),
            "nested_d": pa.StructArray.from_arrays(
                [
                    pa.DictionaryArray.from_arrays(
                        pa.array([k % 3 for k in range(n)], pa.int8()), pa.array(["x", "y", "z"])
                    )
                ],
                names=["k"],
            ),
            "ts": pa.array(list(range(n)), pa.timestamp("ms")),
        }
    )


def _preorder_nodes(array: pa.Array) -> list[tuple[int, int]]:
    """(length, null count) of an unsliced array and its children, depth first, as written."""
    nodes = [(len(array), array.null_count)]
    if pa.types.is_struct(array.type):
        children = [array.field(i) for i in range(array.type.num_fields)]
    elif pa.types.is_list(array.type):
        children = [array.values]
    else:
        children = []
    return nodes + [node for child in children for node in _preorder_nodes(child)]


def _only_batch(table: pa.Table) -> pa.RecordBatch:
    """The table as one record batch, even when it has no rows (to_batches then has none)."""
    return pa.record_batch([column.chunk(0) for column in table.columns], schema=table.schema)


class _Flatbuffer:
    """A forward-only flatbuffer encoder: every table and vector follows what points at it.

    A field is ``(kind, value)`` with kind one of ``u8``, ``i16``, ``i64``, ``table`` (value: a
    dict of fields) or ``pairs`` (value: a list of (int64, int64) structs).
    """

    _SCALARS: ClassVar[dict[str, str]] = {"u8": "<B", "i16": "<h", "i64": "<q"}

    def __init__(self) -> None:
        self.out = bytearray(8)

    def _pad(self, alignment: int, extra: int = 0) -> None:
        while (len(self.out) + extra) % alignment:
            self.out.append(0)

    def finish(self, fields: dict[int, tuple[str, Any]]) -> bytes:
        struct.pack_into("<I", self.out, 0, self.table(fields))
        self._pad(8)
        return bytes(self.out)

    def table(self, fields: dict[int, tuple[str, Any]]) -> int:
        layout: dict[int, int] = {}
        size = 4
        for index in sorted(fields, key=lambda i: -self._size(fields[i][0])):
            width = self._size(fields[index][0])
            size = (size + width - 1) // width * width
            layout[index] = size
            size += width
        count = max(fields, default=-1) + 1
        vtable = [4 + 2 * count, size] + [layout.get(i, 0) for i in range(count)]
        self._pad(8, 2 * len(vtable))
        vtable_pos = len(self.out)
        self.out += struct.pack(f"<{len(vtable)}H", *vtable)
        table_pos = len(self.out)
        self.out += bytes(size)
        struct.pack_into("<i", self.out, table_pos, table_pos - vtable_pos)
        for index, (kind, value) in fields.items():
            pos = table_pos + layout[index]
            if kind in self._SCALARS:
                struct.pack_into(self._SCALARS[kind], self.out, pos, value)
            elif kind == "table":
                struct.pack_into("<I", self.out, pos, self.table(value) - pos)
            else:
                self._pad(8, 4)
                vector_pos = len(self.out)
                self.out += struct.pack("<I", len(value))
                for pair in value:
                    self.out += struct.pack("<qq", *pair)
                struct.pack_into("<I", self.out, pos, vector_pos - pos)
        return table_pos

    @staticmethod
    def _size(kind: str) -> int:
        return {"u8": 1, "i16": 2, "i64": 8}.get(kind, 4)


def _frame(metadata: bytes, body: bytes = b"") -> bytes:
    return b"\xff\xff\xff\xff" + struct.pack("<i", len(metadata)) + metadata + body


def _batch_fields(
    length: int,
    nodes: list[tuple[int, int]],
    buffers: list[tuple[int, int]],
    codec: int | None = None,
    method: int = 0,
) -> dict[int, tuple[str, Any]]:
    fields: dict[int, tuple[str, Any]] = {
        0: ("i64", length),
        1: ("pairs", nodes),
        2: ("pairs", buffers),
    }
    if codec is not None:
        fields[3] = ("table", {0: ("u8", codec), 1: ("u8", method)})
    return fields


def _message(
    header_type: int,
    header: dict[int, tuple[str, Any]],
    body: bytes,
    body_length: int | None = None,
) -> bytes:
    metadata = _Flatbuffer().finish(
        {
            0: ("i16", 4),  # MetadataVersion V5
            1: ("u8", header_type),
            2: ("table", header),
            3: ("i64", len(body) if body_length is None else body_length),
        }
    )
    return _frame(metadata, body)


def _record_batch(
    length: int,
    nodes: list[tuple[int, int]],
    buffers: list[tuple[int, int]],
    body: bytes,
    codec: int | None = None,
    **kwargs: Any,
) -> bytes:
    header = _batch_fields(length, nodes, buffers, codec)
    return _message(HEADER_RECORD_BATCH, header, body, **kwargs)


def _dictionary_batch(
    dictionary_id: int,
    length: int,
    nodes: list[tuple[int, int]],
    buffers: list[tuple[int, int]],
    body: bytes,
    *,
    delta: bool = False,
) -> bytes:
    header = {
        0: ("i64", dictionary_id),
        1: ("table", _batch_fields(length, nodes, buffers)),
        2: ("u8", int(delta)),
    }
    return _message(HEADER_DICTIONARY, header, body)


def _schema_frame(schema: pa.Schema) -> bytes:
    return bytes(schema.serialize().to_pybytes())


FLOAT_SCHEMA = pa.schema([("x", pa.float64())])
THREE_FLOATS = struct.pack("<3d", 1.0, 2.0, 3.0) + bytes(8)


def _float_stream(*batches: bytes) -> bytes:
    return _schema_frame(FLOAT_SCHEMA) + b"".join(batches) + EOS


def _zero_frame(codec: str, size: int) -> bytes:
    """A compressed frame of ``size`` zero bytes, produced without holding them in memory."""
    sink = pa.BufferOutputStream()
    chunk = bytes(MiB)
    with pa.CompressedOutputStream(sink, codec) as compressor:
        for _ in range(size // MiB):
            compressor.write(chunk)
    return bytes(sink.getvalue().to_pybytes())


def _bomb(codec: str, size: int) -> bytes:
    """A float64 column of ``size`` zero bytes whose only data buffer is compressed."""
    frame = struct.pack("<q", size) + _zero_frame(codec, size)
    body = frame + bytes(_padded(len(frame)) - len(frame))
    rows = size // 8
    batch = _record_batch(
        rows, [(rows, 0)], [(0, 0), (0, len(frame))], body, ZSTD if codec == "zstd" else LZ4
    )
    return _float_stream(batch)


@pytest.fixture(scope="module")
def zstd_bomb() -> bytes:
    return _bomb("zstd", 256 * MiB)


@pytest.fixture(scope="module")
def null_bomb() -> bytes:
    return _table_stream(pa.table({"x": pa.nulls(67_108_864)}))


def _bad_offsets_strings() -> pa.Array:
    offsets = struct.pack("<3i", 0, 2**30, 8)
    return pa.StringArray.from_buffers(2, pa.py_buffer(offsets), pa.py_buffer(b"x" * 8))


# --- measuring allocation in a fresh interpreter ------------------------------------------------

_MEASURE = """
import json, resource, sys
import pyarrow as pa
from modelbus_contract.arrow_bounds import decode_table

data = open(sys.argv[1], "rb").read()
pool = pa.default_memory_pool()
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[2] == "guarded":
    try:
        decode_table(data, max_rows=int(sys.argv[3]), max_decoded_bytes=int(sys.argv[4]))
        outcome = "decoded"
    except ValueError as exc:
        outcome = f"{type(exc).__name__}: {exc}"
else:
    table = pa.ipc.open_stream(data).read_all()
    outcome = f"decoded {table.num_rows} rows"
    del table
rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
print(json.dumps({"outcome": outcome, "pool_peak": pool.max_memory(), "rss_growth": rss_growth}))
"""


def _measure(
    data: bytes, tmp_path: Path, *, max_rows: int = 0, max_decoded_bytes: int = 0
) -> dict[str, Any]:
    """Decode ``data`` in a fresh interpreter, with decode_table given limits, else unguarded;
    report the outcome and the peaks of Arrow's memory pool and of the process's RSS."""
    path = tmp_path / "stream.arrows"
    path.write_bytes(data)
    services = Path(arrow_bounds.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(services), *sys.path])}
    mode = "guarded" if max_rows or max_decoded_bytes else "unguarded"
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), mode, str(max_rows), str(max_decoded_bytes)],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def bounded_allocation() -> Iterator[None]:
    """Assert that the block allocates (Python and Arrow pool alike) well under 16 MiB."""
    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        yield
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert python_peak < 16 * MiB
    assert pa.total_allocated_bytes() - arrow_before < 16 * MiB


# --- exact facts for normal streams --------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_facts_are_exact_for_several_batches_of_many_types(codec: str | None) -> None:
    tables = [_fresh_table(n, seed) for seed, n in enumerate([300, 1, 0, 257])]
    batches = [_only_batch(t) for t in tables]
    data = _stream(batches, tables[0].schema, compression=codec)

    facts = inspect_stream(data)

    decoded = ipc.open_stream(data).read_all()
    assert facts.schema.equals(tables[0].schema)
    assert facts.rows == decoded.num_rows == 558
    assert facts.batches == len(batches) == len(list(ipc.open_stream(data)))
    assert facts.compressed is (codec is not None)
    # One dictionary batch per dictionary-encoded field (all batches share them), then batches.
    sizes = _buffer_sizes(tables[0].column("d").chunk(0).dictionary)
    sizes += _buffer_sizes(tables[0].column("nested_d").chunk(0).field(0).dictionary)
    sizes += [size for b in batches for column in b.columns for size in _buffer_sizes(column)]
    if codec is None:
        assert facts.decoded_bytes == sum(_padded(s) for s in sizes)
        assert facts.decoded_bytes == sum(m.body.size for m in _messages(data))
    else:
        assert facts.decoded_bytes == sum(sizes)
    # The FieldNodes read from the metadata are the batches' arrays, depth first.
    for message, batch in zip(
        [m for m in _messages(data) if m.type == "record batch"], batches, strict=True
    ):
        parsed = arrow_bounds._parse_message(
            message.metadata.to_pybytes(), memoryview(message.body), "test"
        )
        assert parsed.batch is not None
        assert parsed.batch.length == batch.num_rows
        top_nodes, count = arrow_bounds._top_level_nodes(batch.schema)
        assert [parsed.batch.nodes[i] for i in top_nodes] == [
            (batch.num_rows, column.null_count) for column in batch.columns
        ]
        expected = [node for column in batch.columns for node in _preorder_nodes(column)]
        assert list(parsed.batch.nodes) == expected
        assert count == len(expected)


def test_compressed_decoded_bytes_are_the_uncompressed_bodies_without_padding() -> None:
    """Sliced batches too: the writer trims their buffers, so sizes come from the stream."""
    table = _fresh_table(1000, 0)
    batches = table.to_batches(max_chunksize=333)
    plain = _stream(batches, table.schema)
    padding = 0
    for message in _messages(plain)[1:]:
        parsed = arrow_bounds._parse_message(
            message.metadata.to_pybytes(), memoryview(message.body), "test"
        )
        assert parsed.batch is not None
        padding += sum(_padded(size) - size for _, size in parsed.batch.buffers)
    for codec in ("zstd", "lz4"):
        packed = inspect_stream(_stream(batches, table.schema, compression=codec))
        assert packed.decoded_bytes == inspect_stream(plain).decoded_bytes - padding
        assert packed.rows == 1000
        assert packed.batches == 4


@pytest.mark.parametrize("codec", CODECS)
def test_zero_row_table_and_schema_only_stream(codec: str | None) -> None:
    schema = _fresh_table(0, 0).schema
    empty_batch = _stream([_only_batch(_fresh_table(0, 0))], schema, compression=codec)
    facts = inspect_stream(empty_batch)
    assert (facts.rows, facts.batches) == (0, 1)
    assert decode_table(empty_batch, max_rows=0, max_decoded_bytes=1 << 16).num_rows == 0

    schema_only = _stream([], schema, compression=codec)
    assert inspect_stream(schema_only) == StreamFacts(schema, 0, 0, 0, False)
    table = decode_table(schema_only, max_rows=0, max_decoded_bytes=0)
    assert table.num_rows == 0
    assert table.schema.equals(schema)


@pytest.mark.parametrize("codec", CODECS)
def test_decode_round_trips_nulls_dictionaries_and_nested_columns(codec: str | None) -> None:
    table = pa.concat_tables([_fresh_table(100, 0), _fresh_table(50, 100)])
    data = _table_stream(table, compression=codec)
    facts = inspect_stream(data)
    decoded = decode_table(data, max_rows=150, max_decoded_bytes=facts.decoded_bytes)
    assert decoded.equals(table)


class _UuidType(pa.ExtensionType):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(pa.binary(16), "modelbus.test.uuid")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> _UuidType:
        return cls()


def _exotic_arrays() -> dict[str, pa.Array]:
    strings = pa.array(["p", "q"])
    return {
        "map": pa.array([[("a", 1)], [], None], pa.map_(pa.string(), pa.int8())),
        "fixed_size_list": pa.array([[1, 2], None, [3, 4]], pa.list_(pa.int32(), 2)),
        "sparse_union": pa.UnionArray.from_sparse(
            pa.array([0, 1, 0], pa.int8()), [pa.array([1, 2, 3]), pa.array(["a", "b", "c"])]
        ),
        "dense_union": pa.UnionArray.from_dense(
            pa.array([0, 1, 0], pa.int8()),
            pa.array([0, 0, 1], pa.int32()),
            [pa.array([1, 2]), pa.array(["a"])],
        ),
        "run_end_encoded": pa.RunEndEncodedArray.from_arrays(
            pa.array([2, 3], pa.int32()), pa.array(["x", "y"])
        ),
        "list_view": pa.array([[1], [2, 3], None], pa.list_view(pa.int8())),
        "large_list_view": pa.array([[1], [2, 3], None], pa.large_list_view(pa.int8())),
        "string_view": pa.array(["short", "longer than twelve bytes", None], pa.string_view()),
        "binary_view": pa.array([b"x", b"y" * 20, None], pa.binary_view()),
        "large_list": pa.array([[1], [], None], pa.large_list(pa.int64())),
        "list_of_dictionary": pa.ListArray.from_arrays(
            pa.array([0, 1, 3, 3], pa.int32()),
            pa.DictionaryArray.from_arrays(pa.array([0, 1, 0], pa.int8()), strings),
        ),
        "decimal256": pa.array([1, 2, None], pa.decimal256(40, 2)),
        "interval": pa.array([pa.MonthDayNano([1, 2, 3])] * 3, pa.month_day_nano_interval()),
        "nested": pa.array([{"a": [{"b": 1}]}, None, {"a": []}]),
        "extension": pa.ExtensionArray.from_storage(
            _UuidType(), pa.array([b"0" * 16, b"1" * 16, None], pa.binary(16))
        ),
    }


@pytest.fixture
def uuid_type_registered() -> Iterator[None]:
    pa.register_extension_type(_UuidType())
    try:
        yield
    finally:
        pa.unregister_extension_type("modelbus.test.uuid")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("name", sorted(_exotic_arrays()))
def test_field_nodes_are_counted_as_pyarrow_writes_them(
    name: str, codec: str | None, uuid_type_registered: None
) -> None:
    table = pa.table({"before": [1, 2, 3], name: _exotic_arrays()[name], "after": [4, 5, 6]})
    data = _table_stream(table, compression=codec)
    facts = inspect_stream(data)
    assert (facts.rows, facts.batches) == (3, 1)
    assert decode_table(data, max_rows=3, max_decoded_bytes=facts.decoded_bytes).equals(table)


def test_input_may_be_bytes_memoryview_bytearray_or_an_arrow_buffer() -> None:
    data = _table_stream(_fresh_table(10, 0))
    expected = inspect_stream(data)
    writable = pa.py_buffer(bytearray(data))
    assert writable.is_mutable
    for form in (memoryview(data), bytearray(data), pa.py_buffer(data), writable):
        assert inspect_stream(form) == expected
        assert decode_table(form, max_rows=10, max_decoded_bytes=1 << 20).num_rows == 10


def test_replacement_dictionaries_each_count() -> None:
    schema = pa.schema([("d", pa.dictionary(pa.int32(), pa.string()))])

    def batch(values: list[str]) -> pa.RecordBatch:
        indices = pa.array([0, len(values) - 1], pa.int32())
        return pa.record_batch([pa.DictionaryArray.from_arrays(indices, values)], schema=schema)

    data = _stream([batch(["a", "b"]), batch(["c", "dd", "eee"])], schema)
    facts = inspect_stream(data)
    kinds = [m.type for m in _messages(data)]
    assert kinds == ["schema", "dictionary", "record batch", "dictionary", "record batch"]
    assert facts.decoded_bytes == sum(m.body.size for m in _messages(data))
    assert decode_table(data, max_rows=4, max_decoded_bytes=facts.decoded_bytes).num_rows == 4


def test_delta_dictionaries_count_the_dictionary_they_accumulate_to() -> None:
    """pyarrow concatenates each delta onto the dictionary, and earlier batches keep theirs."""
    schema = pa.schema([("d", pa.dictionary(pa.int32(), pa.string()))])
    values = [f"value-{k:05d}" for k in range(60)]
    batches = [
        pa.record_batch(
            [pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), values[: 20 * n])],
            schema=schema,
        )
        for n in (1, 2, 3)
    ]
    data = _stream(batches, schema, emit_dictionary_deltas=True)
    bodies = [(m.type, m.body.size) for m in _messages(data)[1:]]
    dictionaries = [size for kind, size in bodies if kind == "dictionary"]
    assert len(dictionaries) == 3
    first, second, third = dictionaries
    record_bodies = sum(size for kind, size in bodies if kind == "record batch")
    expected = first + (first + second) + (first + second + third) + record_bodies
    assert inspect_stream(data).decoded_bytes == expected
    assert decode_table(data, max_rows=3, max_decoded_bytes=expected).column("d").num_chunks == 3
    with pytest.raises(ArrowStreamTooLarge):
        decode_table(data, max_rows=3, max_decoded_bytes=expected - 1)


def test_delta_dictionaries_allocate_what_they_are_counted_at(tmp_path: Path) -> None:
    """A half-megabyte stream of growing deltas makes pyarrow hold ~15 MB of dictionaries."""
    schema = pa.schema([("d", pa.dictionary(pa.int32(), pa.string()))])
    values = [f"value-{k:07d}" for k in range(60 * 500)]
    batches = [
        pa.record_batch(
            [pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), values[: 500 * n])],
            schema=schema,
        )
        for n in range(1, 61)
    ]
    data = _stream(batches, schema, emit_dictionary_deltas=True)
    bodies = sum(m.body.size for m in _messages(data))
    facts = inspect_stream(data)
    measured = _measure(data, tmp_path)
    assert measured["pool_peak"] > 20 * bodies
    assert measured["pool_peak"] <= facts.decoded_bytes < 1.01 * measured["pool_peak"]


def test_decoded_bytes_limit_is_inclusive_and_names_the_figure() -> None:
    data = _table_stream(_fresh_table(100, 0))
    facts = inspect_stream(data)
    decode_table(data, max_rows=100, max_decoded_bytes=facts.decoded_bytes)
    with pytest.raises(ArrowStreamTooLarge) as caught:
        decode_table(data, max_rows=100, max_decoded_bytes=facts.decoded_bytes - 1)
    assert caught.value.figure == "decoded size in bytes"
    assert caught.value.value == facts.decoded_bytes
    assert caught.value.limit == facts.decoded_bytes - 1
    assert f"{facts.decoded_bytes:,}" in str(caught.value)
    with pytest.raises(ArrowStreamTooLarge, match="row count 100 exceeds the limit of 99"):
        decode_table(data, max_rows=99, max_decoded_bytes=facts.decoded_bytes)


def test_message_count_is_bounded() -> None:
    table = _fresh_table(10, 0)
    data = _stream(table.to_batches(max_chunksize=1), table.schema)
    with pytest.raises(ArrowStreamTooLarge, match="message count"):
        inspect_stream(data, max_messages=5)
    assert inspect_stream(data, max_messages=13).batches == 10  # and a schema, 2 dictionaries


def test_crafted_batches_decode_like_written_ones() -> None:
    """The hand-built messages used below are ones pyarrow itself accepts."""
    plain = _float_stream(_record_batch(3, [(3, 0)], [(0, 0), (0, 24)], THREE_FLOATS))
    assert decode_table(plain, max_rows=3, max_decoded_bytes=32).column("x").to_pylist() == [
        1.0, 2.0, 3.0,
    ]
    frame = struct.pack("<q", 24) + pa.compress(THREE_FLOATS[:24], codec="zstd").to_pybytes()
    body = frame + bytes(_padded(len(frame)) - len(frame))
    packed = _float_stream(_record_batch(3, [(3, 0)], [(0, 0), (0, len(frame))], body, ZSTD))
    facts = inspect_stream(packed)
    assert (facts.rows, facts.decoded_bytes, facts.compressed) == (3, 24, True)
    assert decode_table(packed, max_rows=3, max_decoded_bytes=24).column("x").to_pylist() == [
        1.0, 2.0, 3.0,
    ]


def test_buffer_stored_uncompressed_counts_its_length_without_prefix() -> None:
    body = struct.pack("<q", -1) + THREE_FLOATS[:24]
    data = _float_stream(_record_batch(3, [(3, 0)], [(0, 0), (0, 32)], body, LZ4))
    assert inspect_stream(data).decoded_bytes == 24
    table = decode_table(data, max_rows=3, max_decoded_bytes=24)
    assert table.column("x").to_pylist() == [1.0, 2.0, 3.0]


# --- the attacks ---------------------------------------------------------------------------------


def test_null_column_bomb_is_refused_by_its_row_count(null_bomb: bytes, tmp_path: Path) -> None:
    assert len(null_bomb) < 400
    facts = inspect_stream(null_bomb)
    assert (facts.rows, facts.decoded_bytes) == (67_108_864, 0)
    # The cast a caller would do next is what explodes; cast_bytes prices it beforehand.
    assert cast_bytes(facts.rows, [pa.float64()]) == 512 * MiB

    with pytest.raises(ArrowStreamTooLarge, match="row count 67,108,864"):
        decode_table(null_bomb, max_rows=1_000_000, max_decoded_bytes=64 * MiB)
    measured = _measure(null_bomb, tmp_path, max_rows=1_000_000, max_decoded_bytes=64 * MiB)
    assert measured["outcome"].startswith("ArrowStreamTooLarge: Arrow IPC stream row count")
    assert measured["pool_peak"] < 16 * MiB
    assert measured["rss_growth"] < 16 * MiB


def test_null_column_bomb_refusal_allocates_little(
    null_bomb: bytes, bounded_allocation: None
) -> None:
    with pytest.raises(ArrowStreamTooLarge):
        decode_table(null_bomb, max_rows=1_000_000, max_decoded_bytes=64 * MiB)


def test_zstd_bomb_is_refused_before_it_inflates(zstd_bomb: bytes, tmp_path: Path) -> None:
    assert len(zstd_bomb) < 10_000
    facts = inspect_stream(zstd_bomb)
    assert (facts.rows, facts.decoded_bytes, facts.compressed) == (32 * MiB, 256 * MiB, True)

    with pytest.raises(ArrowStreamTooLarge, match=r"decoded size in bytes 268,435,456"):
        decode_table(zstd_bomb, max_rows=64 * MiB, max_decoded_bytes=64 * MiB)
    measured = _measure(zstd_bomb, tmp_path, max_rows=64 * MiB, max_decoded_bytes=64 * MiB)
    assert measured["outcome"].startswith("ArrowStreamTooLarge: Arrow IPC stream decoded size")
    assert measured["pool_peak"] < 16 * MiB
    assert measured["rss_growth"] < 16 * MiB


def test_zstd_bomb_refusal_allocates_little(zstd_bomb: bytes, bounded_allocation: None) -> None:
    with pytest.raises(ArrowStreamTooLarge):
        decode_table(zstd_bomb, max_rows=64 * MiB, max_decoded_bytes=64 * MiB)


def test_zstd_bomb_is_real_when_decoded_unguarded(zstd_bomb: bytes, tmp_path: Path) -> None:
    """The control: the same bytes and the same measurement, without the guard."""
    measured = _measure(zstd_bomb, tmp_path)
    assert measured["outcome"] == f"decoded {32 * MiB} rows"
    assert measured["pool_peak"] >= 256 * MiB


def test_lz4_bomb_is_refused_by_its_declared_size(bounded_allocation: None) -> None:
    bomb = _bomb("lz4", 64 * MiB)
    assert len(bomb) < 300_000
    with pytest.raises(ArrowStreamTooLarge, match=r"decoded size in bytes 67,108,864"):
        decode_table(bomb, max_rows=64 * MiB, max_decoded_bytes=16 * MiB)


@pytest.mark.parametrize("codec", CODECS)
def test_string_offsets_past_the_data_are_invalid(codec: str | None) -> None:
    data = _table_stream(pa.table({"s": _bad_offsets_strings()}), compression=codec)
    # pyarrow's reader accepts it; only full validation looks at the offsets.
    assert ipc.open_stream(data).read_all().num_rows == 2
    with pytest.raises(ArrowStreamInvalid, match=r"[Oo]ffset"):
        decode_table(data, max_rows=10, max_decoded_bytes=1 << 20)


def test_string_offsets_past_the_data_in_a_dictionary_are_invalid() -> None:
    indices = pa.array([0, 1], pa.int32())
    dictionary = pa.DictionaryArray.from_arrays(indices, _bad_offsets_strings())
    data = _table_stream(pa.table({"d": dictionary}))
    with pytest.raises(ArrowStreamInvalid, match=r"[Oo]ffset"):
        decode_table(data, max_rows=10, max_decoded_bytes=1 << 20)


@pytest.mark.parametrize(("end_offset", "valid"), [(1, True), (2**30, False)])
def test_string_offsets_past_the_data_in_a_delta_dictionary_are_invalid(
    end_offset: int, valid: bool
) -> None:
    """pyarrow concatenates a delta onto its dictionary, reading the delta's offsets."""
    schema = pa.schema([("d", pa.dictionary(pa.int32(), pa.string()))])
    data = _schema_frame(schema) + b"".join(
        [
            _dictionary_batch(0, 2, [(2, 0)], [(0, 0), (0, 12), (16, 2)], _ab_body()),
            _record_batch(1, [(1, 0)], [(0, 0), (0, 4)], struct.pack("<ii", 1, 0)),
            _dictionary_batch(
                0, 1, [(1, 0)], [(0, 0), (0, 8), (8, 1)],
                struct.pack("<ii", 0, end_offset) + b"c" + bytes(7), delta=True,
            ),
            _record_batch(1, [(1, 0)], [(0, 0), (0, 4)], struct.pack("<ii", 2, 0)),
            EOS,
        ]
    )
    assert inspect_stream(data).decoded_bytes == 24 + 8 + (24 + 16) + 8
    if valid:
        table = decode_table(data, max_rows=2, max_decoded_bytes=80)
        assert table.column("d").to_pylist() == ["b", "c"]
    else:
        with pytest.raises(ArrowStreamInvalid, match=r"[Oo]ffset"):
            decode_table(data, max_rows=2, max_decoded_bytes=80)


def _ab_body() -> bytes:
    return struct.pack("<3i", 0, 1, 2) + bytes(4) + b"ab" + bytes(6)


def test_crafted_dictionary_stream_decodes_when_valid() -> None:
    schema = pa.schema([("d", pa.dictionary(pa.int32(), pa.string()))])
    data = _schema_frame(schema) + b"".join(
        [
            _dictionary_batch(0, 2, [(2, 0)], [(0, 0), (0, 12), (16, 2)], _ab_body()),
            _record_batch(2, [(2, 0)], [(0, 0), (0, 8)], struct.pack("<ii", 1, 0)),
            EOS,
        ]
    )
    facts = inspect_stream(data)
    assert (facts.rows, facts.batches, facts.decoded_bytes) == (2, 1, 24 + 8)
    table = decode_table(data, max_rows=2, max_decoded_bytes=32)
    assert table.column("d").to_pylist() == ["b", "a"]


# --- garbage, structure and malformed metadata --------------------------------------------------


def _valid() -> bytes:
    return _table_stream(_fresh_table(5, 0))


def _invalid_cases() -> dict[str, tuple[bytes, str]]:
    """Malformed inputs, each with (a fragment of) the reason it must be refused for."""
    valid = _valid()
    frames = _frames(valid)
    schema_frame, first = frames[0], frames[1]
    sink = pa.BufferOutputStream()
    ipc.write_tensor(pa.Tensor.from_numpy(np.arange(4)), sink)
    tensor = sink.getvalue().to_pybytes()
    nodes, buffers = [(3, 0)], [(0, 0), (0, 24)]

    def floats(*batch: Any, **kwargs: Any) -> bytes:
        return _float_stream(_record_batch(*batch, **kwargs))

    ab = [(0, 0), (0, 12), (16, 2)], _ab_body()
    return {
        "empty": (b"", "empty"),
        "garbage": (b"definitely not an arrow stream" * 3, "metadata bytes"),
        "end of stream only": (EOS, "no schema"),
        "continuation marker only": (b"\xff\xff\xff\xff", "metadata length"),
        "truncated in the schema": (valid[:40], "metadata bytes"),
        "truncated in a body": (valid[: len(valid) - len(EOS) - 20], "message body"),
        "two schemas": (schema_frame + b"".join(frames) + EOS, "second schema"),
        "batch before the schema": (
            b"".join([first, schema_frame, *frames[2:]]) + EOS,
            "before the schema",
        ),
        "trailing bytes": (valid + bytes(8), "follow the end-of-stream marker"),
        "a tensor": (tensor, "Tensor message"),
        "a tensor after the schema": (schema_frame + tensor, "Tensor message"),
        "negative batch length": (floats(-3, nodes, buffers, THREE_FLOATS), "negative length"),
        "negative node length": (floats(3, [(-3, 0)], buffers, THREE_FLOATS), "length -3"),
        "more nulls than values": (floats(3, [(3, 4)], buffers, THREE_FLOATS), "4 nulls"),
        "column longer than the batch": (
            floats(3, [(1 << 40, 0)], buffers, THREE_FLOATS),
            "1099511627776 values in column 0 of a 3-row batch",
        ),
        "column shorter than the batch": (
            floats(3, [(2, 0)], buffers, THREE_FLOATS),
            "2 values in column 0 of a 3-row batch",
        ),
        "too many nodes": (floats(3, [(3, 0), (3, 0)], buffers, THREE_FLOATS), "2 field nodes"),
        "no nodes": (floats(3, [], buffers, THREE_FLOATS), "0 field nodes"),
        "buffer outside the body": (
            floats(3, nodes, [(0, 0), (8, 32)], THREE_FLOATS),
            "outside its 32-byte body",
        ),
        "negative buffer offset": (
            floats(3, nodes, [(0, 0), (-8, 8)], THREE_FLOATS),
            "outside its 32-byte body",
        ),
        "body length disagreeing with the body": (
            # pyarrow frames by the declared length: the body's last 8 bytes read as a
            # (legacy, zero-length) end-of-stream marker, then the real one is trailing.
            floats(3, nodes, buffers, THREE_FLOATS, body_length=24),
            "follow the end-of-stream marker",
        ),
        "unknown codec": (floats(3, nodes, buffers, THREE_FLOATS, codec=7), "codec 7"),
        "compressed buffer shorter than its prefix": (
            floats(3, nodes, [(0, 0), (0, 4)], THREE_FLOATS, codec=ZSTD),
            "shorter than its prefix",
        ),
        "compressed buffer declaring a negative size": (
            floats(3, nodes, buffers, struct.pack("<q", -2) + THREE_FLOATS[:24], codec=ZSTD),
            "declaring -2 bytes",
        ),
        "compressed buffer inflating past its declared size": (
            _declares_less_than_it_inflates_to(),
            "decompression",
        ),
        "values buffer too short": (
            floats(3, nodes, [(0, 0), (0, 8)], THREE_FLOATS),
            "too small",
        ),
        "dictionary batch without a dictionary in the schema": (
            _float_stream(_dictionary_batch(0, 2, [(2, 0)], *ab)),
            "dictionary",
        ),
        "dictionary batch whose values are not its length": (
            _float_stream(_dictionary_batch(0, 2, [(5, 0)], *ab)),
            "values are not its length",
        ),
    }


def _declares_less_than_it_inflates_to() -> bytes:
    """A stream whose one zstd buffer declares 8 uncompressed bytes and inflates to 24."""
    compressed: bytes = pa.compress(THREE_FLOATS[:24], codec="zstd").to_pybytes()
    frame = struct.pack("<q", 8) + compressed
    body = frame + bytes(_padded(len(frame)) - len(frame))
    return _float_stream(_record_batch(3, [(3, 0)], [(0, 0), (0, len(frame))], body, ZSTD))


@pytest.mark.parametrize("case", sorted(_invalid_cases()))
def test_malformed_streams_are_invalid_with_a_one_line_reason(case: str) -> None:
    data, reason = _invalid_cases()[case]
    with pytest.raises(ArrowStreamInvalid) as caught:
        decode_table(data, max_rows=1 << 20, max_decoded_bytes=1 << 30)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message
    assert 0 < len(message) <= 300


def test_truncation_at_a_message_boundary_is_judged_as_pyarrow_judges_it() -> None:
    """A stream may end without its end-of-stream marker, but not before its dictionaries."""
    table = _fresh_table(6, 0)
    data = _stream(table.to_batches(max_chunksize=2), table.schema)
    frames = _frames(data)
    outcomes: list[int | None] = []
    for kept in range(1, len(frames) + 1):
        prefix = b"".join(frames[:kept])
        try:
            expected = ipc.open_stream(prefix).read_all().num_rows
        except pa.ArrowInvalid:
            with pytest.raises(ArrowStreamInvalid, match="dictionaries"):
                decode_table(prefix, max_rows=6, max_decoded_bytes=1 << 20)
            outcomes.append(None)
        else:
            decoded = decode_table(prefix, max_rows=6, max_decoded_bytes=1 << 20)
            assert decoded.num_rows == expected
            outcomes.append(expected)
    # schema | dictionary | dictionary | 3 batches of 2 rows
    assert outcomes == [0, None, 0, 2, 4, 6]


def test_every_prefix_of_a_stream_is_framed_as_pyarrows_stream_reader_frames_it() -> None:
    """Cut anywhere — inside a length, metadata or body, or at a boundary — a stream
    decodes exactly when pyarrow's own stream reader reads it, to the same rows."""
    table = pa.table({"a": [1.5, None, 3.0], "s": ["x", "yy", None]})
    data = _stream(table.to_batches(max_chunksize=2), table.schema)
    agreed = 0
    for cut in range(len(data) + 1):
        prefix = data[:cut]
        try:
            expected: int | None = ipc.open_stream(prefix).read_all().num_rows
        except (pa.ArrowInvalid, OSError, ValueError):
            expected = None
        try:
            got: int | None = decode_table(prefix, max_rows=10, max_decoded_bytes=1 << 20).num_rows
        except ArrowStreamInvalid:
            got = None
        assert got == expected, f"cut at byte {cut} of {len(data)}"
        agreed += got is not None
    assert agreed == 4  # at the end of the schema, of each batch, and the whole stream


def _metadata_cases() -> dict[str, tuple[bytes, str]]:
    """Message flatbuffers pyarrow's verifier would refuse, for the parser's own checks."""

    def handmade(vtable: list[int], soffset: int = 12, at_20: int = 0) -> bytes:
        # root -> table at 16, whose vtable sits at 16 - soffset; its first field slot is 20
        out = bytearray(32)
        struct.pack_into("<I", out, 0, 16)
        struct.pack_into(f"<{len(vtable)}H", out, 4, *vtable)
        struct.pack_into("<iI", out, 16, soffset, at_20)
        return bytes(out)

    nodes = _Flatbuffer().finish(
        {1: ("u8", HEADER_RECORD_BATCH), 2: ("table", _batch_fields(1, [(1, 0)], []))}
    )
    marker = struct.pack("<Iqq", 1, 1, 0)
    at = nodes.index(marker)
    overrun = nodes[:at] + struct.pack("<I", 2**31) + nodes[at + 4 :]
    return {
        "empty": (b"", "truncated"),
        "root past the end": (struct.pack("<I", 4096) + bytes(4), "truncated"),
        "vtable before the start": (handmade([8, 8, 4], soffset=100), "truncated"),
        "vtable past the end": (handmade([8, 8, 4], soffset=-4096), "truncated"),
        "odd vtable size": (handmade([7, 8, 4]), "malformed message table"),
        "vtable shorter than its header": (handmade([2, 8]), "malformed message table"),
        "table past the end": (handmade([8, 20, 4]), "malformed message table"),
        "field outside its table": (handmade([8, 8, 4, 12]), "field 1 of message"),
        "field inside the table's soffset": (handmade([8, 8, 0, 2]), "field 1 of message"),
        "header offset past the end": (handmade([10, 8, 0, 0, 4], at_20=4096), "truncated"),
        "vector past the end": (overrun, "overruns"),
    }


@pytest.mark.parametrize("case", sorted(_metadata_cases()))
def test_the_flatbuffer_reader_refuses_malformed_metadata(case: str) -> None:
    metadata, reason = _metadata_cases()[case]
    with pytest.raises(ArrowStreamInvalid, match=reason):
        arrow_bounds._parse_message(metadata, memoryview(b""), "message 1")


def test_pyarrow_failures_become_one_short_line() -> None:
    long_reason = "x" * 1000 + "\nsecond line"
    error = arrow_bounds._invalid(long_reason)
    assert isinstance(error, ArrowStreamInvalid)
    assert "\n" not in str(error)
    assert len(str(error)) == 300


def test_too_large_round_trips_through_pickle() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(ArrowStreamTooLarge("row count", 5, 4)))
    assert (error.figure, error.value, error.limit) == ("row count", 5, 4)
    assert str(error) == "Arrow IPC stream row count 5 exceeds the limit of 4"


# --- cast_bytes ---------------------------------------------------------------------------------

CAST_TYPES = [
    (pa.float64(), 8000),
    (pa.int32(), 4000),
    (pa.int8(), 1000),
    (pa.bool_(), 125),
    (pa.decimal128(10, 2), 16000),
    (pa.binary(3), 3000),
    (pa.timestamp("us"), 8000),
    (pa.month_day_nano_interval(), 16000),
    (pa.string(), 4000),
    (pa.binary(), 4000),
    (pa.large_string(), 8000),
    (pa.large_binary(), 8000),
    (pa.string_view(), 16000),
    (pa.null(), 0),
    (pa.list_(pa.int64()), 4000),
    (pa.large_list(pa.int8()), 8000),
    (pa.map_(pa.string(), pa.int8()), 4000),
    (pa.list_(pa.int8(), 3), 3000),
    (pa.struct([("a", pa.int8()), ("b", pa.int64())]), 8000),
    (pa.struct([]), 125),
    (pa.dictionary(pa.int16(), pa.string()), 2000),
    (pa.list_view(pa.int8()), 4000),
    (pa.dense_union([pa.field("a", pa.int8())]), 4000),
    (pa.sparse_union([pa.field("a", pa.int8())]), 1000),
    (pa.run_end_encoded(pa.int32(), pa.int64()), 0),
]


@pytest.mark.parametrize(("dtype", "expected"), CAST_TYPES, ids=[str(t) for t, _ in CAST_TYPES])
def test_cast_bytes_per_type(dtype: pa.DataType, expected: int) -> None:
    assert cast_bytes(1000, [dtype]) == expected


def test_cast_bytes_sums_types_and_rejects_negative_rows() -> None:
    assert cast_bytes(0, [pa.float64(), pa.string()]) == 0
    assert cast_bytes(9, [pa.float64(), pa.string(), pa.bool_()]) == 72 + 36 + 2
    with pytest.raises(ValueError, match="negative"):
        cast_bytes(-1, [pa.float64()])


# pyarrow cannot cast null to list views, unions or run-end encoded types.
NULL_CASTABLE = [
    dtype
    for dtype, _ in CAST_TYPES
    if not (pa.types.is_list_view(dtype) or pa.types.is_union(dtype))
    and not pa.types.is_run_end_encoded(dtype)
]


@pytest.mark.parametrize("dtype", NULL_CASTABLE, ids=str)
def test_cast_bytes_is_a_lower_bound_of_a_real_cast_of_nulls(dtype: pa.DataType) -> None:
    column = pa.nulls(100_000)
    before = pa.total_allocated_bytes()
    cast = column.cast(dtype)
    allocated = pa.total_allocated_bytes() - before
    assert allocated >= cast_bytes(100_000, [dtype])
    del cast


def test_cast_bytes_is_a_lower_bound_of_real_casts_between_types() -> None:
    ints = pa.array([k if k % 3 else None for k in range(100_000)], pa.int32())
    for dtype in (pa.float64(), pa.int64(), pa.string(), pa.large_string(), pa.int8()):
        source = ints if dtype != pa.int8() else pc.bit_wise_and(ints, 0x3F)
        before = pa.total_allocated_bytes()
        cast = source.cast(dtype)
        assert pa.total_allocated_bytes() - before >= cast_bytes(len(ints), [dtype])
        del cast


# --- properties --------------------------------------------------------------------------------

SEEDS: list[bytes] = [
    _table_stream(_fresh_table(7, 0)),
    _table_stream(_fresh_table(7, 1), compression="zstd"),
    _table_stream(_fresh_table(7, 2), compression="lz4"),
    _stream(_fresh_table(9, 3).to_batches(max_chunksize=4), _fresh_table(0, 0).schema),
    _float_stream(_record_batch(3, [(3, 0)], [(0, 0), (0, 24)], THREE_FLOATS)),
    _table_stream(pa.table({"s": _bad_offsets_strings()})),
    _stream([], _fresh_table(0, 0).schema),
]
INTERESTING_INTS = [0, 1, -1, 7, 8, 2**31 - 1, -(2**31), 2**32 - 1, 2**62, 2**63 - 1, -(2**63)]


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["byte", "int32", "int64", "truncate", "insert", "delete"]))
        if op == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif op in ("int32", "int64"):
            bits = 64 if op == "int64" else 32
            value = draw(st.sampled_from(INTERESTING_INTS)) % (1 << bits)
            chunk = value.to_bytes(bits // 8, "little")
            data[pos : pos + len(chunk)] = chunk[: len(data) - pos]
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


@pytest.fixture
def watchdog() -> Iterator[None]:
    """A hang anywhere (even inside pyarrow) dumps the stacks and ends the run."""
    faulthandler.dump_traceback_later(300, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _decode_or_refuse(data: bytes) -> None:
    started = time.monotonic()
    try:
        table = decode_table(data, max_rows=10_000, max_decoded_bytes=1 << 20)
    except (ArrowStreamInvalid, ArrowStreamTooLarge) as exc:
        assert "\n" not in str(exc)
        assert len(str(exc)) <= 300
    else:
        assert isinstance(table, pa.Table)
        assert table.num_rows <= 10_000
        table.validate(full=True)
    assert time.monotonic() - started < 5


PROPERTY = settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_decode_or_are_refused(watchdog: None, data: bytes) -> None:
    _decode_or_refuse(data)


@PROPERTY
@given(st.sampled_from([_schema_frame(FLOAT_SCHEMA), b"\xff\xff\xff\xff"]), st.binary())
def test_garbage_after_a_valid_prefix_is_refused(
    watchdog: None, prefix: bytes, tail: bytes
) -> None:
    _decode_or_refuse(prefix + tail)


@PROPERTY
@given(mutated_streams())
def test_mutated_valid_streams_decode_or_are_refused(watchdog: None, data: bytes) -> None:
    _decode_or_refuse(data)


METADATA_SEEDS = [
    (m.metadata.to_pybytes(), m.body.to_pybytes() if m.body is not None else b"")
    for seed in SEEDS[:5]
    for m in _messages(seed)
]


@PROPERTY
@given(
    st.one_of(
        st.tuples(st.binary(max_size=512), st.binary(max_size=64)),
        st.tuples(
            st.sampled_from(METADATA_SEEDS),
            st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 255)), max_size=8),
        ).map(lambda t: (_patch(t[0][0], t[1]), t[0][1])),
    )
)
def test_metadata_parser_only_ever_raises_invalid(metadata_and_body: tuple[bytes, bytes]) -> None:
    """pyarrow verifies flatbuffers before we see them; the parser must not rely on that."""
    metadata, body = metadata_and_body
    try:
        arrow_bounds._parse_message(metadata, memoryview(body), "fuzz")
    except ArrowStreamInvalid as exc:
        assert len(str(exc)) <= 300


def _patch(data: bytes, changes: list[tuple[int, int]]) -> bytes:
    patched = bytearray(data)
    for pos, value in changes:
        if patched:
            patched[pos % len(patched)] = value
    return bytes(patched)


# -- streams like one already inspected: framed without pyarrow's message reader ---------


def _fresh_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrow_bounds, "_schema_cache", {})
    monkeypatch.setattr(arrow_bounds, "_message_cache", {})


def test_a_stream_like_one_inspected_before_is_judged_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fresh_caches(monkeypatch)
    table = pa.table({"a": [1.0, 2.0], "s": ["x", None]})
    first = inspect(_table_stream(table))
    assert [type(b) for b in first.batches] == [ipc.Message]  # read by pyarrow
    other = pa.table({"a": [3.0, 4.0], "s": ["y", None]})  # same metadata, other values
    again = inspect(_table_stream(other))
    assert [type(b) for b in again.batches] == [pa.Buffer]  # framed from the caches
    assert again.facts == inspect_stream(_table_stream(other))
    assert again.facts.rows == 2 and again.facts.schema.equals(table.schema)
    assert again.decode(max_rows=2, max_decoded_bytes=1 << 20).equals(other)
    two = _stream([table.to_batches()[0], other.to_batches()[0]], table.schema)
    assert inspect(two).decode(max_rows=4, max_decoded_bytes=1 << 20).equals(
        pa.concat_tables([table, other]))


def test_known_metadata_does_not_vouch_for_a_broken_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fresh_caches(monkeypatch)
    data = _table_stream(pa.table({"a": [1.0]}))
    inspect(data)
    for broken in (data[:-9], data[:-8] + b"\x00", data + b"\x00" * 8, data[:-8] + EOS + EOS):
        with pytest.raises(ArrowStreamInvalid):
            inspect(broken).decode(max_rows=10, max_decoded_bytes=1 << 20)
    # The body is the decoder's to judge, whatever the metadata: string offsets past the data.
    strings = _table_stream(pa.table({"s": ["ab"]}))
    inspect(strings)
    bad = bytearray(strings)
    offsets_end = bytes(struct.pack("<i", 2))
    at = bad.rindex(offsets_end)
    bad[at:at + 4] = struct.pack("<i", 1 << 20)
    with pytest.raises(ArrowStreamInvalid):
        inspect(bytes(bad)).decode(max_rows=10, max_decoded_bytes=1 << 20)


@pytest.mark.parametrize("name", [b"top", b"inner"])
def test_a_field_name_that_is_not_text_is_invalid(name: bytes) -> None:
    data = bytearray(_table_stream(pa.table({"top": [1.0], "s": pa.array([{"inner": 1}])})))
    data[data.index(name)] = 0xFF
    with pytest.raises(ArrowStreamInvalid, match="utf-8"):
        inspect(bytes(data))
