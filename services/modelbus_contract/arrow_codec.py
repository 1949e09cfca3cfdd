"""The Arrow IPC stream codec of requests and results (host side: worker, client, results).

Encoding is plain; decoding of bytes from the network goes through ``arrow_bounds``, which
learns rows and decoded size from the stream's metadata before anything is inflated.
"""

from __future__ import annotations

import pyarrow as pa

ARROW_STREAM = "application/vnd.apache.arrow.stream"
JSON = "application/json"


def table_to_ipc(table: pa.Table) -> bytes:
    """One table as Arrow IPC stream bytes."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def ipc_to_table(data: bytes) -> pa.Table:
    """Arrow IPC stream bytes from a trusted peer as one table (no bounds)."""
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()
