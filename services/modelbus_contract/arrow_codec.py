"""The Arrow IPC stream codec of requests and results (host side: worker, client, results).

Encoding is plain; decoding of bytes from the network goes through ``arrow_bounds``, which
learns rows and decoded size from the stream's metadata before anything is inflated.
"""

from __future__ import annotations

import pyarrow as pa

ARROW_STREAM = "application/vnd.apache.arrow.stream"
JSON = "application/json"


END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _has_dictionary(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return True
    return any(_has_dictionary(dtype.field(i).type) for i in range(dtype.num_fields))


def has_dictionary(schema: pa.Schema) -> bool:
    """Whether any field, at any depth, is dictionary-encoded (its stream needs
    dictionary batches, which only the stream writer makes)."""
    return any(_has_dictionary(f.type) for f in schema)


def table_to_ipc(table: pa.Table) -> bytes:
    """One table as Arrow IPC stream bytes."""
    schema = table.schema
    if table.num_rows and not has_dictionary(schema):
        # The stream's messages joined directly: the same bytes as the stream writer's,
        # at a third of its cost for the small tables most answers are.
        parts = [schema.serialize().to_pybytes()]
        parts.extend(batch.serialize().to_pybytes() for batch in table.to_batches())
        parts.append(END_OF_STREAM)
        return b"".join(parts)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def ipc_to_table(data: bytes) -> pa.Table:
    """Arrow IPC stream bytes from a trusted peer as one table (no bounds)."""
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()
