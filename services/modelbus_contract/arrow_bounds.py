"""Bounded decoding of untrusted Arrow IPC stream bytes.

A request body of a few hundred bytes can declare tens of millions of rows of a buffer-less
column, a compressed body of a few kilobytes can inflate to hundreds of megabytes, and a string
column whose offsets point past its data is accepted by pyarrow's reader but crashes whatever
reads its values. So the stream is inspected first, from the IPC message metadata alone (the
flatbuffers are parsed here, with every read bounds-checked), the caller's limits are applied to
the figures that inspection yields, and only then is the stream decoded and fully validated.

Only pyarrow and the standard library are used.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import pyarrow as pa
import pyarrow.ipc as ipc

__all__ = [
    "ArrowStreamInvalid",
    "ArrowStreamTooLarge",
    "InspectedStream",
    "StreamFacts",
    "cast_bytes",
    "decode_table",
    "inspect",
    "inspect_stream",
]

_MAX_REASON_CHARS: Final = 300

# Message.header_type (the MessageHeader union of Message.fbs).
_HEADER_SCHEMA: Final = 1
_HEADER_DICTIONARY_BATCH: Final = 2
_HEADER_RECORD_BATCH: Final = 3
_HEADER_NAMES: Final = {0: "NONE", 4: "Tensor", 5: "SparseTensor"}

# BodyCompression.codec (CompressionType) and BodyCompression.method (BodyCompressionMethod).
_CODECS: Final = {0: "lz4_frame", 1: "zstd"}
_METHOD_BUFFER: Final = 0

# A compressed buffer starts with its uncompressed length; -1 means it was stored as is.
_PREFIX_BYTES: Final = 8
_STORED_UNCOMPRESSED: Final = -1

_U8: Final = struct.Struct("<B")
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_I32: Final = struct.Struct("<i")
_I64: Final = struct.Struct("<q")
_I64_PAIR: Final = struct.Struct("<qq")  # FieldNode and Buffer structs alike
_PAIR: Final = _I64_PAIR.size


class ArrowStreamInvalid(ValueError):
    """The bytes are not a valid single-table Arrow IPC stream; the message says why."""


class ArrowStreamTooLarge(ValueError):
    """A figure declared by the stream (rows, decoded bytes, messages) exceeds its limit."""

    def __init__(self, figure: str, value: int, limit: int) -> None:
        super().__init__(f"Arrow IPC stream {figure} {value:,} exceeds the limit of {limit:,}")
        self.figure = figure
        self.value = value
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.figure, self.value, self.limit)


@dataclass(frozen=True)
class StreamFacts:
    """What an Arrow IPC stream declares, read from its message metadata without decoding.

    ``rows`` is the sum of the record batches' lengths (dictionary batches excluded),
    ``batches`` the number of record batches, ``decoded_bytes`` the bytes the record and
    dictionary batch bodies occupy once decoded (see :func:`inspect_stream`) and
    ``compressed`` whether any batch body is compressed.
    """

    schema: pa.Schema
    rows: int
    batches: int
    decoded_bytes: int
    compressed: bool


def _invalid(reason: object) -> ArrowStreamInvalid:
    """An ArrowStreamInvalid whose message is one line of at most 300 characters."""
    text = " ".join(str(reason).split()) or "unknown error"
    message = f"invalid Arrow IPC stream: {text}"
    if len(message) > _MAX_REASON_CHARS:
        message = message[: _MAX_REASON_CHARS - 3] + "..."
    return ArrowStreamInvalid(message)


class _Flatbuffer:
    """Bounds-checked reads of little-endian scalars from one flatbuffer."""

    __slots__ = ("data", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.what = what

    def read(self, fmt: struct.Struct, pos: int) -> Any:
        if pos < 0 or pos + fmt.size > len(self.data):
            raise _invalid(f"{self.what} metadata is truncated or malformed")
        return fmt.unpack_from(self.data, pos)[0]

    def root(self) -> _FbTable:
        return self.table(self.read(_U32, 0), "message")

    def table(self, pos: int, name: str) -> _FbTable:
        """The table at ``pos``: its vtable located and checked to lie inside the buffer."""
        vtable = pos - self.read(_I32, pos)
        vtable_size = self.read(_U16, vtable)
        table_size = self.read(_U16, vtable + 2)
        if (
            vtable_size < 4
            or vtable_size % 2
            or vtable + vtable_size > len(self.data)
            or table_size < 4
            or pos + table_size > len(self.data)
        ):
            raise _invalid(f"{self.what} metadata has a malformed {name} table")
        return _FbTable(self, pos, vtable, vtable_size, table_size, name)


class _FbTable:
    """One flatbuffer table; absent fields read as their schema default."""

    __slots__ = ("fb", "name", "pos", "table_size", "vtable", "vtable_size")

    def __init__(
        self, fb: _Flatbuffer, pos: int, vtable: int, vtable_size: int, table_size: int, name: str
    ) -> None:
        self.fb = fb
        self.pos = pos
        self.vtable = vtable
        self.vtable_size = vtable_size
        self.table_size = table_size
        self.name = name

    def _field(self, index: int, size: int) -> int | None:
        slot = 4 + 2 * index
        if slot + 2 > self.vtable_size:
            return None
        offset: int = self.fb.read(_U16, self.vtable + slot)
        if offset == 0:
            return None
        if offset < 4 or offset + size > self.table_size:
            raise _invalid(f"{self.fb.what} metadata: field {index} of {self.name} is out of range")
        return self.pos + offset

    def scalar(self, index: int, fmt: struct.Struct, default: int = 0) -> int:
        pos = self._field(index, fmt.size)
        return default if pos is None else int(self.fb.read(fmt, pos))

    def _target(self, index: int) -> int | None:
        pos = self._field(index, 4)
        return None if pos is None else pos + int(self.fb.read(_U32, pos))

    def table(self, index: int, name: str) -> _FbTable | None:
        target = self._target(index)
        return None if target is None else self.fb.table(target, name)

    def pairs(self, index: int) -> _Pairs:
        """A vector of structs of two int64; absent means empty."""
        target = self._target(index)
        if target is None:
            return _Pairs(b"", 0, 0)
        count: int = self.fb.read(_U32, target)
        start = target + 4
        if start + count * _PAIR > len(self.fb.data):
            raise _invalid(f"{self.fb.what} metadata: a vector of {self.name} overruns it")
        return _Pairs(self.fb.data, start, count)


class _Pairs:
    """A bounds-checked flatbuffer vector of (int64, int64) structs, read in place.

    Not unpacked into a list: metadata of a few megabytes could hold hundreds of thousands of
    them, and Python tuples would multiply that size several times over.
    """

    __slots__ = ("count", "data", "start")

    def __init__(self, data: bytes, start: int, count: int) -> None:
        self.data = data
        self.start = start
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        pair: tuple[int, int] = _I64_PAIR.unpack_from(self.data, self.start + _PAIR * index)
        return pair

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for offset in range(self.start, self.start + _PAIR * self.count, _PAIR):
            pair: tuple[int, int] = _I64_PAIR.unpack_from(self.data, offset)
            yield pair


@dataclass(frozen=True)
class _Batch:
    """The parts of a RecordBatch table that bound its decoding."""

    length: int
    nodes: _Pairs
    buffers: _Pairs
    codec: str | None


@dataclass(frozen=True)
class _Message:
    """One IPC message as its metadata declares it; ``batch`` is None for a schema."""

    header_type: int
    batch: _Batch | None = None
    decoded_bytes: int = 0
    dictionary_id: int = 0
    is_delta: bool = False


def _parse_batch(table: _FbTable, body_length: int, what: str) -> _Batch:
    length = table.scalar(0, _I64)
    if length < 0:
        raise _invalid(f"{what} declares a negative length {length}")
    nodes = table.pairs(1)
    for node_length, null_count in nodes:
        if node_length < 0 or not 0 <= null_count <= node_length:
            raise _invalid(
                f"{what} has a field node of length {node_length} with {null_count} nulls"
            )
    buffers = table.pairs(2)
    for offset, size in buffers:
        if offset < 0 or size < 0 or offset + size > body_length:
            raise _invalid(
                f"{what} has a buffer at offset {offset} of {size} bytes outside its "
                f"{body_length}-byte body"
            )
    codec = None
    compression = table.table(3, "BodyCompression")
    if compression is not None:
        code = compression.scalar(0, _U8)
        if code not in _CODECS:
            raise _invalid(f"{what} uses unknown compression codec {code}")
        method = compression.scalar(1, _U8)
        if method != _METHOD_BUFFER:
            raise _invalid(f"{what} uses unknown compression method {method}")
        codec = _CODECS[code]
    return _Batch(length, nodes, buffers, codec)


def _decoded_size(batch: _Batch, body: memoryview, what: str) -> int:
    """Bytes the body occupies once decoded, from the length prefixes of compressed buffers.

    pyarrow allocates the declared uncompressed length before it decompresses, so that
    declaration, not the real inflation, is what bounds memory.
    """
    if batch.codec is None:
        return len(body)
    total = 0
    for offset, size in batch.buffers:
        if size == 0:
            continue
        if size < _PREFIX_BYTES:
            raise _invalid(f"{what} has a {size}-byte compressed buffer (shorter than its prefix)")
        declared: int = _I64.unpack_from(body, offset)[0]
        if declared == _STORED_UNCOMPRESSED:
            total += size - _PREFIX_BYTES
        elif declared >= 0:
            total += declared
        else:
            raise _invalid(f"{what} has a compressed buffer declaring {declared} bytes")
    return total


def _parse_message(metadata: bytes, body: memoryview, what: str) -> _Message:
    """Parse one message's flatbuffer metadata (the Message table) against its body."""
    root = _Flatbuffer(metadata, what).root()
    header_type = root.scalar(1, _U8)
    body_length = root.scalar(3, _I64)
    if body_length != len(body):
        raise _invalid(f"{what} declares a {body_length}-byte body but has {len(body)} bytes")
    header = root.table(2, "header")
    if header is None:
        raise _invalid(f"{what} has no header")
    if header_type == _HEADER_SCHEMA:
        if len(body):
            raise _invalid(f"{what} is a schema with a {len(body)}-byte body")
        return _Message(header_type)
    if header_type == _HEADER_RECORD_BATCH:
        batch = _parse_batch(header, len(body), what)
        return _Message(header_type, batch, _decoded_size(batch, body, what))
    if header_type == _HEADER_DICTIONARY_BATCH:
        data = header.table(1, "RecordBatch")
        if data is None:
            raise _invalid(f"{what} is a dictionary batch without data")
        batch = _parse_batch(data, len(body), what)
        if not batch.nodes or batch.nodes[0][0] != batch.length:
            raise _invalid(f"{what} is a dictionary batch whose values are not its length")
        return _Message(
            header_type,
            batch,
            _decoded_size(batch, body, what),
            dictionary_id=header.scalar(0, _I64),
            is_delta=bool(header.scalar(2, _U8)),
        )
    name = _HEADER_NAMES.get(header_type, f"header type {header_type}")
    raise _invalid(f"{what} is a {name} message, not part of a table stream")


def _top_level_nodes(schema: pa.Schema) -> tuple[list[int], int]:
    """Indices of the top-level fields' nodes in a record batch, and the total node count.

    Nodes are the schema's fields flattened depth-first; a dictionary-encoded field is one node
    (its values travel in dictionary batches) and an extension type counts as its storage.
    """
    tops: list[int] = []
    count = 0
    for field in schema:
        tops.append(count)
        # Iterative, so that a deeply nested hostile schema cannot exhaust the Python stack.
        pending: list[Any] = [field.type]
        while pending:
            dtype = pending.pop()
            while isinstance(dtype, pa.BaseExtensionType):
                dtype = dtype.storage_type
            count += 1
            if not pa.types.is_dictionary(dtype):
                pending.extend(dtype.field(i).type for i in range(dtype.num_fields))
    return tops, count


def _check_names(schema: pa.Schema) -> None:
    """Field names at every depth must be UTF-8 text: pyarrow reads any bytes, and whatever
    later names a column would fail (checked once per distinct schema message)."""
    pending: list[Any] = list(schema)
    while pending:
        field = pending.pop()
        field.name  # noqa: B018 - raises UnicodeDecodeError (a ValueError) if not text
        dtype = field.type
        while isinstance(dtype, pa.BaseExtensionType):
            dtype = dtype.storage_type
        if pa.types.is_dictionary(dtype):
            dtype = dtype.value_type
        pending.extend(dtype.field(i) for i in range(dtype.num_fields))


def _as_buffer(data: bytes | memoryview | pa.Buffer) -> pa.Buffer:
    """The bytes as an immutable Arrow buffer, zero-copy when they already are immutable.

    Writable memory is copied: bytes changed between inspection and decoding would slip past
    the bounds.
    """
    if isinstance(data, pa.Buffer):
        return pa.py_buffer(data.to_pybytes()) if data.is_mutable else data
    view = memoryview(data)
    if not view.readonly or not view.c_contiguous:
        return pa.py_buffer(view.tobytes())
    return pa.py_buffer(view.cast("B") if view.format != "B" or view.ndim != 1 else view)


@dataclass(frozen=True)
class _SchemaInfo:
    schema: pa.Schema
    top_nodes: tuple[int, ...]
    node_count: int


_CACHE_ENTRIES: Final = 256
_CACHE_METADATA_BYTES: Final = 65_536  # larger metadata is parsed every time
_schema_cache: dict[bytes, _SchemaInfo] = {}
_message_cache: dict[bytes, tuple[int, _Message]] = {}


def _remember(cache: dict[bytes, Any], metadata: bytes, value: Any) -> None:
    """Keep ``value`` for ``metadata`` (small metadata only; the oldest entry makes room)."""
    if len(metadata) > _CACHE_METADATA_BYTES:
        return
    if len(cache) >= _CACHE_ENTRIES:
        cache.pop(next(iter(cache), b""), None)
    cache[metadata] = value


def _schema_info(raw: Any, metadata: bytes, body: memoryview, what: str) -> _SchemaInfo:
    """The schema a schema message declares; parsed once per distinct message (a client
    sends the same schema message with every request)."""
    cached = _schema_cache.get(metadata)
    if cached is not None and not len(body):
        return cached
    _parse_message(metadata, body, what)  # checks it is a well-formed schema message
    try:
        schema = ipc.read_schema(raw)
        _check_names(schema)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _invalid(f"{what}: {exc}") from None
    tops, count = _top_level_nodes(schema)
    info = _SchemaInfo(schema, tuple(tops), count)
    _remember(_schema_cache, metadata, info)
    return info


def _batch_message(metadata: bytes, body: memoryview, what: str) -> _Message:
    """:func:`_parse_message`, remembered for uncompressed messages: a client's one-row
    requests carry byte-identical batch metadata, whose figures depend on nothing else
    once the body has the length the metadata declares."""
    cached = _message_cache.get(metadata)
    if cached is not None and cached[0] == len(body):
        return cached[1]
    message = _parse_message(metadata, body, what)
    batch = message.batch
    if batch is not None and batch.codec is None:
        _remember(_message_cache, metadata, (len(body), message))
    return message


@dataclass(frozen=True)
class InspectedStream:
    """A stream that passed inspection: its facts, and the messages to decode it from."""

    facts: StreamFacts
    buffer: pa.Buffer
    batches: list[Any]  # the record batch messages (or buffers holding one each), in order
    dictionaries: bool

    def decode(self, *, max_rows: int, max_decoded_bytes: int) -> pa.Table:
        """The fully validated table, after the bounds are checked (see :func:`decode_table`)."""
        facts = self.facts
        if facts.rows > max_rows:
            raise ArrowStreamTooLarge("row count", facts.rows, max_rows)
        if facts.decoded_bytes > max_decoded_bytes:
            raise ArrowStreamTooLarge(
                "decoded size in bytes", facts.decoded_bytes, max_decoded_bytes
            )
        try:
            # Full validation reads every offset and index: the reader checks only sizes.
            if self.dictionaries:  # dictionary state is the stream reader's business
                table = ipc.open_stream(self.buffer).read_all()
                table.validate(full=True)
            else:  # the messages inspection read, decoded without parsing the stream again
                batches = [ipc.read_record_batch(m, facts.schema) for m in self.batches]
                for batch in batches:  # a table's validation is the same, at twice the cost
                    batch.validate(full=True)
                table = pa.Table.from_batches(batches, facts.schema)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _invalid(exc) from None
        if table.num_rows != facts.rows or not table.schema.equals(facts.schema):
            raise _invalid("the decoded table disagrees with the stream's metadata")
        return table


def inspect(
    data: bytes | memoryview | pa.Buffer, *, max_messages: int = 100_000
) -> InspectedStream:
    """:func:`inspect_stream`, keeping what decoding needs so the stream is read once."""
    return _inspect(_as_buffer(data), max_messages)


_CONTINUATION: Final = 0xFFFFFFFF
_FRAME: Final = struct.Struct("<Ii")  # continuation marker, metadata length
_END_MARKERS: Final = (b"", b"\xff\xff\xff\xff\x00\x00\x00\x00")


def _inspect_known(buffer: pa.Buffer, max_messages: int) -> InspectedStream | None:
    """The stream inspected without pyarrow's message reader, when every message in it has
    metadata byte for byte like one already inspected (a client's stream of the same
    schema, request after request); None otherwise, and the full inspection decides.

    Only what the full inspection remembered is reused: a schema message, and record batch
    messages whose figures depend on nothing but their metadata and body length
    (uncompressed). Framing is the stream format's: a continuation marker, the metadata
    length, the metadata, then the body whose length the remembered message declares; the
    stream ends at its last byte or with the end-of-stream marker. The record batch
    messages are handed to decoding as buffers (``ipc.read_record_batch`` reads them).
    """
    data = memoryview(buffer)
    size = len(data)
    if size < _FRAME.size:
        return None
    marker, length = _FRAME.unpack_from(data, 0)
    if marker != _CONTINUATION or length <= 0 or _FRAME.size + length > size:
        return None
    info = _schema_cache.get(bytes(data[_FRAME.size:_FRAME.size + length]))
    if info is None:
        return None
    pos = _FRAME.size + length
    rows = decoded = 0
    batches: list[Any] = []
    while size - pos >= _FRAME.size:
        marker, length = _FRAME.unpack_from(data, pos)
        if marker != _CONTINUATION or length <= 0 or pos + _FRAME.size + length > size:
            break
        start, end = pos, pos + _FRAME.size + length
        cached = _message_cache.get(bytes(data[pos + _FRAME.size:end]))
        if cached is None:
            return None
        body_length, message = cached
        batch = message.batch
        if message.header_type != _HEADER_RECORD_BATCH or batch is None or end + body_length > size:
            return None
        if len(batch.nodes) != info.node_count or any(
            batch.nodes[index][0] != batch.length for index in info.top_nodes
        ):
            return None  # the full inspection says what is wrong
        if len(batches) + 2 > max_messages:
            return None
        pos = end + body_length
        batches.append(buffer.slice(start, pos - start))
        rows += batch.length
        decoded += message.decoded_bytes
    if bytes(data[pos:]) not in _END_MARKERS:
        return None
    facts = StreamFacts(info.schema, rows, len(batches), decoded, False)
    return InspectedStream(facts, buffer, batches, False)


def _inspect(buffer: pa.Buffer, max_messages: int) -> InspectedStream:
    if buffer.size == 0:
        raise _invalid("the stream is empty")
    known = _inspect_known(buffer, max_messages)
    if known is not None:
        return known
    # Messages are read one by one off a single reader: ``ipc.read_message`` frames each as
    # pyarrow's stream reader does, at a third of the cost of opening a MessageReader.
    source = pa.BufferReader(buffer)

    info: _SchemaInfo | None = None
    rows = decoded = messages = 0
    compressed = dictionaries = False
    record_batches: list[Any] = []
    dictionary_sizes: dict[int, int] = {}
    while True:
        try:
            raw = ipc.read_message(source)
        except EOFError:  # the end-of-stream marker, or no bytes left
            break
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _invalid(exc) from None
        messages += 1
        if messages > max_messages:
            raise ArrowStreamTooLarge("message count", messages, max_messages)
        what = f"message {messages}"
        body = memoryview(raw.body) if raw.body is not None else memoryview(b"")
        metadata = raw.metadata.to_pybytes()
        if raw.type == "schema":
            if info is not None:
                raise _invalid(f"{what} is a second schema (one table per stream)")
            info = _schema_info(raw, metadata, body, what)
            continue
        message = _batch_message(metadata, body, what)
        if message.header_type == _HEADER_SCHEMA:  # pyarrow and the metadata disagree
            raise _invalid(f"{what} is a schema message pyarrow did not read as one")
        if info is None:
            raise _invalid(f"{what} comes before the schema")
        batch = message.batch
        if batch is None:  # unreachable: only schema messages have no batch
            raise _invalid(f"{what} has no batch")
        compressed = compressed or batch.codec is not None

        if message.header_type == _HEADER_DICTIONARY_BATCH:
            dictionaries = True
            size = message.decoded_bytes
            if message.is_delta:
                size += dictionary_sizes.get(message.dictionary_id, 0)
            dictionary_sizes[message.dictionary_id] = size
            decoded += size
            continue
        if len(batch.nodes) != info.node_count:
            raise _invalid(
                f"{what} has {len(batch.nodes)} field nodes where the schema has "
                f"{info.node_count}"
            )
        for column, index in enumerate(info.top_nodes):
            if batch.nodes[index][0] != batch.length:
                raise _invalid(
                    f"{what} has {batch.nodes[index][0]} values in column {column} "
                    f"of a {batch.length}-row batch"
                )
        rows += batch.length
        record_batches.append(raw)
        decoded += message.decoded_bytes

    if info is None:
        raise _invalid("the stream has no schema message")
    try:
        trailing = buffer.size - source.tell()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _invalid(exc) from None
    if trailing:
        raise _invalid(f"{trailing} bytes follow the end-of-stream marker")
    facts = StreamFacts(info.schema, rows, len(record_batches), decoded, compressed)
    return InspectedStream(facts, buffer, record_batches, dictionaries)


def inspect_stream(
    data: bytes | memoryview | pa.Buffer, *, max_messages: int = 100_000
) -> StreamFacts:
    """Read what an Arrow IPC stream declares without decompressing or decoding any batch.

    Message framing is left to pyarrow's MessageReader (the reader that decoding will use, so
    both see the same messages, and whose bodies are zero-copy slices of ``data``); each
    message's flatbuffer metadata is parsed here. ``decoded_bytes`` counts an uncompressed
    body at its length and a compressed one at the sum of its buffers' declared uncompressed
    lengths (a buffer stored as is counts its length less the 8-byte prefix). A delta
    dictionary batch counts the whole dictionary it accumulates to, because pyarrow
    concatenates the delta onto the previous dictionary while earlier batches keep that alive.

    Raises ArrowStreamInvalid unless the bytes are one schema followed by dictionary and
    record batches with consistent metadata, and ArrowStreamTooLarge if there are more than
    ``max_messages`` messages.
    """
    return _inspect(_as_buffer(data), max_messages).facts


def decode_table(
    data: bytes | memoryview | pa.Buffer, *, max_rows: int, max_decoded_bytes: int
) -> pa.Table:
    """Decode one Arrow IPC stream into a fully validated table, within the given bounds.

    The stream is inspected first (:func:`inspect_stream`); ArrowStreamTooLarge is raised if
    it declares more than ``max_rows`` rows or more than ``max_decoded_bytes`` decoded bytes,
    before pyarrow decompresses or allocates anything. Any other defect raises
    ArrowStreamInvalid; nothing else is raised, whatever the bytes.
    """
    return inspect(data).decode(max_rows=max_rows, max_decoded_bytes=max_decoded_bytes)


def cast_bytes(rows: int, types: list[pa.DataType]) -> int:
    """A lower bound of the bytes that casting ``rows`` rows to each of ``types`` allocates.

    Per type it is the largest buffer an array of that many rows must have: ``rows *
    bit_width / 8`` (rounded up) for fixed-width types, dictionaries by their indices; 4 offset
    bytes per row for string, binary, list and map, 8 for their large variants, 16 for view
    types; a struct or fixed-size list its largest child's; null and run-end encoded types
    nothing. Validity bitmaps and variable-width value bytes are left out: pyarrow builds a
    cast of a null column on one zeroed buffer shared by all its buffers, and values depend on
    the data.
    """
    if rows < 0:
        raise ValueError(f"rows must not be negative, got {rows}")
    return sum(_largest_buffer(rows, dtype) for dtype in types)


@lru_cache(maxsize=1024)  # request after request: the same few row counts and input types
def _largest_buffer(rows: int, dtype: Any) -> int:
    while isinstance(dtype, pa.BaseExtensionType):
        dtype = dtype.storage_type
    pt = pa.types
    bitmap = (rows + 7) // 8
    if pt.is_null(dtype) or pt.is_run_end_encoded(dtype):
        return 0
    if pt.is_boolean(dtype):
        return bitmap
    if pt.is_dictionary(dtype):
        return (rows * int(dtype.index_type.bit_width) + 7) // 8
    if pt.is_fixed_size_list(dtype):
        return max(bitmap, _largest_buffer(rows * int(dtype.list_size), dtype.value_type))
    if pt.is_struct(dtype):
        children = [_largest_buffer(rows, dtype.field(i).type) for i in range(dtype.num_fields)]
        return max([bitmap, *children])
    if pt.is_string(dtype) or pt.is_binary(dtype) or pt.is_list(dtype) or pt.is_map(dtype):
        return 4 * rows
    if pt.is_list_view(dtype) or (pt.is_union(dtype) and dtype.mode == "dense"):
        return 4 * rows
    if pt.is_large_string(dtype) or pt.is_large_binary(dtype):
        return 8 * rows
    if pt.is_large_list(dtype) or pt.is_large_list_view(dtype):
        return 8 * rows
    if pt.is_string_view(dtype) or pt.is_binary_view(dtype):
        return 16 * rows
    if pt.is_union(dtype):
        return rows
    try:
        bit_width = int(dtype.bit_width)
    except ValueError:
        return 0
    return (rows * bit_width + 7) // 8
