"""Turning a batch of result records into Parquet-ready tables (pure logic).

``ok`` results become rows of their model version's table, with ``correlation_id``,
``model``, ``model_version`` and ``row_index`` columns in front of the outputs. Everything
else becomes one row of the errors table (``_errors/``): error results (their own
``error_code``), and results that cannot go into a Parquet file, under a code of this
module:

- ``undecodable_record``: the Kafka client could not decode the record at all (for
  instance a header name that is not UTF-8); only its topic, partition and offset are known;
- ``unreadable_result``: headers that are not UTF-8 or contradict each other, or an ``ok``
  body that is not a readable Arrow IPC stream (or declares more rows or bytes than allowed);
- ``unwritable_result``: an ``ok`` table that cannot be stored with the others of its model
  version: a column type Parquet cannot hold, duplicate column names (outputs named like the
  columns added in front count), or a schema that cannot be merged with the table's earlier
  results in the batch (the first result of a batch sets the schema).

Every error row carries ``correlation_id``, ``model``, ``model_version``, ``error_code``,
``error_message`` and the record's ``topic``, ``partition`` and ``offset``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from modelbus_contract.arrow_bounds import ArrowStreamInvalid, ArrowStreamTooLarge, decode_table
from modelbus_contract.headers import header_dict, read_headers

ERRORS_DIR = "_errors"
UNDECODABLE = "undecodable_record"
UNREADABLE = "unreadable_result"
UNWRITABLE = "unwritable_result"

RESULT_HEADERS = (
    "status", "model", "model_version", "correlation_id", "error_code", "error_message",
    "content-type",
)
FRONT_COLUMNS = ("correlation_id", "model", "model_version", "row_index")
ERROR_SCHEMA = pa.schema(
    [
        ("correlation_id", pa.string()),
        ("model", pa.string()),
        ("model_version", pa.string()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("topic", pa.string()),
        ("partition", pa.int64()),
        ("offset", pa.int64()),
    ]
)
DEFAULT_MAX_ROWS = 10_000_000
DEFAULT_MAX_DECODED_BYTES = 1024 * 1024 * 1024
_MAX_MESSAGE_CHARS = 2000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ResultRecord:
    """One record of the results topic; ``problem`` says why it cannot be used, if so."""

    headers: dict[str, str]
    value: bytes | None
    topic: str = ""
    partition: int = -1
    offset: int = -1
    problem: str | None = None
    problem_code: str = UNREADABLE

    @classmethod
    def of(cls, record: Any) -> ResultRecord:
        """From an aiokafka ``ConsumerRecord``; header problems are kept, never raised."""
        raw = record.headers or ()
        problems = read_headers(raw, RESULT_HEADERS).problems
        return cls(
            header_dict(raw), record.value, record.topic, record.partition, record.offset,
            "; ".join(problems) if problems else None,
        )

    @classmethod
    def undecodable(cls, topic: str, partition: int, offset: int, reason: str) -> ResultRecord:
        """A record the Kafka client could not decode: only its position is known."""
        return cls({}, None, topic, partition, offset, reason, UNDECODABLE)


@dataclass
class TableBatch:
    """The tables of a batch by directory, and the records each model table holds."""

    tables: dict[str, pa.Table]
    members: dict[str, list[ResultRecord]] = field(default_factory=dict)


# A record with another (non-empty) status is an interim notice, which the result follows.
FINAL_STATUSES = frozenset({"ok", "error"})


def partition_dir(model: str, version: str) -> str:
    """Directory of a model version's files: ``NAME/vVERSION``.

    Not hive-style (``model=NAME``): readers would turn it into a partition column that
    clashes with the ``model`` column every file already carries.
    """
    return f"{_safe(model)}/v{_safe(version)}"


def _safe(part: str) -> str:
    cleaned = _UNSAFE.sub("_", part)
    return "_" + cleaned if not cleaned or cleaned.startswith(".") else cleaned


def build_tables(
    records: Sequence[ResultRecord],
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> TableBatch:
    """Directory → table for every model version (and the errors) in the batch, and which
    records each model version's table holds."""
    parts: dict[str, list[pa.Table]] = {}
    schemas: dict[str, pa.Schema] = {}
    members: dict[str, list[ResultRecord]] = {}
    errors: list[dict[str, Any]] = []
    writable: dict[pa.Schema, str | None] = {}
    for record in records:
        h = record.headers
        if record.problem is not None:
            errors.append(error_row(record, record.problem_code, record.problem))
            continue
        if h.get("status") not in FINAL_STATUSES and h.get("status"):
            continue  # an interim notice (`preparing`) or a newer writer's: not a result
        if h.get("status") != "ok" or not record.value:
            errors.append(
                error_row(record, h.get("error_code", "unknown"), h.get("error_message", ""))
            )
            continue
        try:
            outputs = decode_table(
                record.value, max_rows=max_rows, max_decoded_bytes=max_decoded_bytes
            )
        except (ArrowStreamInvalid, ArrowStreamTooLarge) as exc:
            errors.append(error_row(record, UNREADABLE, str(exc)))
            continue
        table = _with_front_columns(record, outputs)
        directory = partition_dir(h.get("model", ""), h.get("model_version", ""))
        problem = _unwritable(table.schema, writable) or _unmergeable(
            schemas.get(directory), table.schema
        )
        if problem is not None:
            errors.append(error_row(record, UNWRITABLE, problem))
            continue
        schemas[directory] = (
            table.schema if directory not in schemas
            else pa.unify_schemas([schemas[directory], table.schema], promote_options="permissive")
        )
        parts.setdefault(directory, []).append(table)
        members.setdefault(directory, []).append(record)
    tables = {
        directory: pa.concat_tables(tables, promote_options="permissive")
        for directory, tables in parts.items()
    }
    if errors:
        tables[ERRORS_DIR] = errors_table(errors)
    return TableBatch(tables, members)


def error_row(record: ResultRecord, code: str, message: str) -> dict[str, Any]:
    """The errors-table row of ``record``."""
    h = record.headers
    return {
        "correlation_id": h.get("correlation_id", ""),
        "model": h.get("model", ""),
        "model_version": h.get("model_version", ""),
        "error_code": code,
        "error_message": message[:_MAX_MESSAGE_CHARS],
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }


def errors_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=ERROR_SCHEMA)


def _with_front_columns(record: ResultRecord, outputs: pa.Table) -> pa.Table:
    h, n = record.headers, outputs.num_rows
    front = pa.table(
        {
            "correlation_id": pa.array([h.get("correlation_id", "")] * n, pa.string()),
            "model": pa.array([h.get("model", "")] * n, pa.string()),
            "model_version": pa.array([h.get("model_version", "")] * n, pa.string()),
            "row_index": pa.array(range(n), pa.int64()),
        }
    )
    for i in range(outputs.num_columns):
        front = front.append_column(outputs.schema.field(i), outputs.column(i))
    return front


def _unwritable(schema: pa.Schema, cache: dict[pa.Schema, str | None]) -> str | None:
    """Why a table of ``schema`` cannot be stored as Parquet, or None."""
    if schema not in cache:
        cache[schema] = _duplicates(schema) or parquet_problem(schema)
    return cache[schema]


def _duplicates(schema: pa.Schema) -> str | None:
    counts = Counter(schema.names)
    dups = sorted(name for name, n in counts.items() if n > 1)
    if not dups:
        return None
    ours = [name for name in dups if name in FRONT_COLUMNS]
    why = f" ({', '.join(ours)}: added in front of every result)" if ours else ""
    return f"duplicate column names {dups}{why}"


def parquet_problem(schema: pa.Schema) -> str | None:
    """Why Parquet refuses ``schema`` (checked by writing an empty table), or None."""
    try:
        pq.write_table(schema.empty_table(), pa.BufferOutputStream())
    except (pa.ArrowException, ValueError, TypeError) as exc:
        return f"Parquet cannot store this table: {type(exc).__name__}: {exc}"
    return None


def _unmergeable(previous: pa.Schema | None, schema: pa.Schema) -> str | None:
    if previous is None:
        return None
    try:
        pa.unify_schemas([previous, schema], promote_options="permissive")
    except (pa.ArrowException, ValueError, TypeError) as exc:
        return f"schema differs from earlier results of this model version: {exc}"
    return None
