"""Reading and writing the table files the CLI accepts: CSV, Parquet and Arrow IPC."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

SUFFIXES = (".csv", ".parquet", ".pq", ".arrow", ".arrows", ".ipc", ".feather")
OUTPUT_SUFFIXES = (".csv", ".parquet", ".pq", ".arrow", ".arrows", ".ipc")


class TableFileError(ValueError):
    """The file is missing, of an unknown kind, or unreadable."""


def read_table(path: Path) -> pa.Table:
    """The whole file as one table (CSV column types judged on all of it)."""
    source = open_batches(path)
    try:
        if path.suffix.lower() == ".csv":
            return pacsv.read_csv(path)
        return pa.Table.from_batches(list(source.batches(1 << 20)), schema=source.schema)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableFileError(f"cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class BatchSource:
    """A table file read batch by batch; ``total_rows`` when the format says it up front."""

    path: Path
    schema: pa.Schema
    total_rows: int | None
    _read: Callable[[int], Iterator[pa.RecordBatch]]

    def batches(self, rows: int) -> Iterator[pa.RecordBatch]:
        """The file's rows from the start, in batches of about ``rows`` rows."""
        try:
            yield from self._read(rows)
        except (pa.ArrowInvalid, OSError) as exc:
            raise TableFileError(f"cannot read {self.path}: {exc}") from None


def open_batches(path: Path) -> BatchSource:
    """A table file to read in batches, without loading it whole."""
    if not path.is_file():
        raise TableFileError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _csv_source(path)
        if suffix in (".parquet", ".pq"):
            return _parquet_source(path)
        if suffix in (".arrow", ".arrows", ".ipc", ".feather"):
            return _ipc_source(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableFileError(f"cannot read {path}: {exc}") from None
    raise TableFileError(f"unsupported input {path.name!r}: use one of {', '.join(SUFFIXES)}")


def _parquet_source(path: Path) -> BatchSource:
    meta = pq.ParquetFile(path)

    def read(rows: int) -> Iterator[pa.RecordBatch]:
        # A row group at a time: the reader otherwise buffers the bytes of every row group
        # it is asked for, the whole file, before the first batch.
        file = pq.ParquetFile(path)
        for group in range(file.num_row_groups):
            yield from file.iter_batches(batch_size=rows, row_groups=[group])

    return BatchSource(path, meta.schema_arrow, meta.metadata.num_rows, read)


def _csv_source(path: Path) -> BatchSource:
    schema = pacsv.open_csv(path).schema

    def read(rows: int) -> Iterator[pa.RecordBatch]:
        yield from pacsv.open_csv(path)

    return BatchSource(path, schema, None, read)


def _ipc_source(path: Path) -> BatchSource:
    try:
        schema = pa.ipc.open_stream(pa.memory_map(str(path))).schema

        def read_stream(rows: int) -> Iterator[pa.RecordBatch]:
            yield from pa.ipc.open_stream(pa.memory_map(str(path)))

        return BatchSource(path, schema, None, read_stream)
    except pa.ArrowInvalid:
        pass
    reader = pa.ipc.open_file(pa.memory_map(str(path)))
    total = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))

    def read_file(rows: int) -> Iterator[pa.RecordBatch]:
        file = pa.ipc.open_file(pa.memory_map(str(path)))
        for i in range(file.num_record_batches):
            yield file.get_batch(i)

    return BatchSource(path, reader.schema, total, read_file)


class TableWriter(Protocol):
    def write_table(self, table: pa.Table) -> None: ...
    def close(self) -> None: ...


def open_writer(path: Path, schema: pa.Schema) -> TableWriter:
    """A writer of ``schema`` tables to a .csv, .parquet or .arrow (IPC stream) file."""
    check_output_suffix(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return cast(TableWriter, pacsv.CSVWriter(str(path), schema))
    if suffix in (".parquet", ".pq"):
        return cast(TableWriter, pq.ParquetWriter(str(path), schema))
    return _IpcStreamFile(path, schema)


class _IpcStreamFile:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._sink.close()


def check_output_suffix(path: Path) -> None:
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise TableFileError(f"unsupported output {path.name!r}: use .csv, .parquet or .arrow")


def render(table: pa.Table) -> str:
    """A readable text table (all rows): pandas formatting where pandas is installed, else
    one line of tab-separated values per row under a header line."""
    try:
        import pandas as pd
    except ImportError:
        rows = zip(*(column.to_pylist() for column in table.columns), strict=True)
        lines = ["\t".join(table.column_names), *("\t".join(map(str, row)) for row in rows)]
        return "\n".join(lines)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        return str(table.to_pandas().to_string(index=False))
