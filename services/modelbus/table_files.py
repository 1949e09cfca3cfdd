"""Reading and writing the table files the CLI accepts: CSV, Parquet and Arrow IPC."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelbus_contract.arrow_codec import ipc_to_table

SUFFIXES = (".csv", ".parquet", ".pq", ".arrow", ".arrows", ".ipc", ".feather")


class TableFileError(ValueError):
    """The file is missing, of an unknown kind, or unreadable."""


def read_table(path: Path) -> pa.Table:
    if not path.is_file():
        raise TableFileError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pacsv.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pq.read_table(path)
        if suffix in (".arrow", ".arrows", ".ipc", ".feather"):
            return _read_ipc(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableFileError(f"cannot read {path}: {exc}") from None
    raise TableFileError(f"unsupported input {path.name!r}: use one of {', '.join(SUFFIXES)}")


def _read_ipc(path: Path) -> pa.Table:
    data = path.read_bytes()
    try:
        return ipc_to_table(data)
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.BufferReader(data)).read_all()


def write_table(table: pa.Table, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        pacsv.write_csv(table, path)
    elif suffix in (".parquet", ".pq"):
        pq.write_table(table, path)
    elif suffix in (".arrow", ".arrows", ".ipc"):
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
    else:
        raise TableFileError(f"unsupported output {path.name!r}: use .csv, .parquet or .arrow")


def render(table: pa.Table) -> str:
    """A readable text table (all rows, pandas formatting)."""
    with pd.option_context("display.max_rows", None, "display.width", 200):
        return str(table.to_pandas().to_string(index=False))
