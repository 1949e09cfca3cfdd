"""``modelbus predict … -o OUT``: score a table file of any size, chunked and resumable.

The input is read batch by batch and cut into chunks that fit a record; at most a window of
them is in flight; each answer is saved as it arrives (``predict_spool``) and, once every chunk
has an answer, the parts are written to the output in input order. Memory is bounded by the
window, not the file. Rows of a failed chunk are null in the output, listed in the report and,
with an errors file, written there with their error. The spool is kept while rows failed (or
the run was interrupted): the next run with the same output sends only what has no answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from modelbus_contract.errors import ModelbusError
from modelbus_contract.lanes import Lane
from modelbus_contract.settings import ModelbusSettings

from ..async_client import AsyncModelbusClient
from ..chunked_predict import FATAL_CODES, ChunkResult, new_chunk_id
from ..chunking import SAMPLE_ROWS, Chunk, chunk_count, chunks_of, rows_per_chunk
from .predict_spool import JobIdentity, Spool
from .table_files import BatchSource, TableWriter, open_batches, open_writer


class Progress(Protocol):
    def update(self, n: int, /) -> object: ...


@dataclass(frozen=True)
class FileJob:
    model: str
    version: str | None
    input: Path
    output: Path
    errors: Path | None
    window: int
    timeout_s: float
    resume_only: bool = False  # --resume: continue a run, never start one
    lane: Lane = "bulk"


@dataclass(frozen=True)
class FailedRows:
    start: int
    stop: int
    code: str
    message: str


@dataclass
class JobReport:
    total_rows: int = 0
    sent_rows: int = 0  # rows sent by this run (the rest were answered by an earlier one)
    failed: list[FailedRows] = field(default_factory=list)
    seconds: float = 0.0
    output_written: bool = False
    spool: Path | None = None

    @property
    def failed_rows(self) -> int:
        return sum(f.stop - f.start for f in self.failed)


class JobError(ValueError):
    """The job cannot start or continue (one readable line)."""


def open_job(job: FileJob, max_message_bytes: int, max_rows: int) -> tuple[BatchSource, Spool]:
    """The input and the spool to continue, or a new spool; JobError when they disagree."""
    source = open_batches(job.input)
    identity = JobIdentity.of(job.input, job.model, job.version)
    directory = Spool.beside(job.output)
    spool = Spool.load(directory, identity)
    if spool is not None:
        return source, spool
    if job.resume_only:
        raise JobError(f"nothing to resume: {directory} holds no run of this input and model")
    sample = _first_rows(source)
    rows = rows_per_chunk(sample, max_message_bytes, max_rows)
    return source, Spool.create(directory, identity, new_chunk_id(), rows, source.total_rows)


async def run_job(
    job: FileJob, settings: ModelbusSettings, source: BatchSource, spool: Spool,
    progress: Progress,
) -> JobReport:
    """Send what has no answer yet, save each answer, then write the output in order."""
    report = JobReport(spool=spool.directory)
    began = time.monotonic()
    if job.errors is not None:
        job.errors.unlink(missing_ok=True)  # an old one would describe another run
    errors = _ErrorsFile(job.errors, source.schema)
    ranges: dict[int, tuple[int, int]] = {i: (c.start, c.rows) for i, c in spool.done.items()}
    failed: dict[int, FailedRows] = {}
    try:
        async with AsyncModelbusClient(settings=settings) as client:
            results = client.predict_chunks(
                job.model, _pending(source, spool, ranges),
                spool.pinned_version or job.version, job.timeout_s, job.window,
                spool.chunk_id, chunk_count(source.total_rows, spool.rows_per_chunk),
                lane=job.lane,
            )
            first = True
            async for result in results:
                report.sent_rows += result.chunk.rows
                _record(result, spool, errors, failed)
                progress.update(result.chunk.rows)
                if first and result.error is not None and result.error.code in FATAL_CODES:
                    if not spool.done:  # nothing to continue from
                        spool.remove()
                    raise result.error  # and nothing else was sent
                first = False
    finally:
        errors.close()
    report.failed = [failed[i] for i in sorted(failed)]
    report.total_rows = sum(rows for _, rows in ranges.values())
    report.output_written = _write_output(job.output, spool, ranges)
    if not failed:
        spool.remove()
        report.spool = None
    report.seconds = time.monotonic() - began
    return report


def _pending(source: BatchSource, spool: Spool, ranges: dict[int, tuple[int, int]]
             ) -> Iterator[Chunk]:
    """The input's chunks that have no answer yet; every chunk's range is noted."""
    for chunk in chunks_of(source.batches(spool.rows_per_chunk), spool.rows_per_chunk):
        ranges[chunk.index] = (chunk.start, chunk.rows)
        if chunk.index not in spool.done:
            yield chunk


def _record(result: ChunkResult, spool: Spool, errors: _ErrorsFile,
            failed: dict[int, FailedRows]) -> None:
    """Save an answer, or note the failure."""
    chunk = result.chunk
    if result.table is not None:
        spool.pin(result.model_version)
        spool.save_part(chunk.index, chunk.start, chunk.rows, result.table)
        return
    error = result.error
    assert error is not None
    failed[chunk.index] = FailedRows(chunk.start, chunk.stop, error.code, error.message)
    errors.write(chunk, error)


def _write_output(output: Path, spool: Spool, ranges: dict[int, tuple[int, int]]) -> bool:
    """The answers in input order (nulls for failed rows); False when no chunk was answered."""
    if not spool.done:
        return False
    schema = _nullable(spool.read_part(min(spool.done)).schema)
    tmp = output.with_name(f"{output.stem}.incomplete{output.suffix}")
    writer = open_writer(tmp, schema)
    try:
        for index in sorted(ranges):
            if index in spool.done:
                writer.write_table(spool.read_part(index).cast(schema))
            else:
                _, rows = ranges[index]
                writer.write_table(_nulls(schema, rows))
    finally:
        writer.close()
    tmp.replace(output)
    return True


def _nullable(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)


def _nulls(schema: pa.Schema, rows: int) -> pa.Table:
    return pa.Table.from_arrays([pa.nulls(rows, f.type) for f in schema], schema=schema)


def _first_rows(source: BatchSource) -> pa.Table:
    for batch in source.batches(SAMPLE_ROWS):
        return pa.Table.from_batches([batch])
    return source.schema.empty_table()


class _ErrorsFile:
    """The input rows of failed chunks, with ``row_index``, ``error_code`` and
    ``error_message``; written only when something failed."""

    def __init__(self, path: Path | None, input_schema: pa.Schema) -> None:
        self._path = path
        self._schema = pa.schema([
            pa.field("row_index", pa.int64()), pa.field("error_code", pa.string()),
            pa.field("error_message", pa.string()), *input_schema,
        ])
        self._writer: TableWriter | None = None

    def write(self, chunk: Chunk, error: ModelbusError) -> None:
        if self._path is None:
            return
        if self._writer is None:
            self._writer = open_writer(self._path, self._schema)
        rows = chunk.rows
        extra = pa.table({
            "row_index": pa.array(range(chunk.start, chunk.stop), pa.int64()),
            "error_code": pa.array([error.code] * rows, pa.string()),
            "error_message": pa.array([error.message] * rows, pa.string()),
        })
        table = pa.Table.from_arrays(
            [*extra.columns, *chunk.table.columns], schema=self._schema
        )
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
