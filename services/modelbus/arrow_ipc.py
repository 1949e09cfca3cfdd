"""Arrow IPC stream bytes: the value format of requests and results."""

from __future__ import annotations

import pyarrow as pa


def to_ipc_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def from_ipc_stream(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()
