"""Turning a batch of result records into Parquet-ready tables (pure logic).

``ok`` results become rows of their model version's table, with ``correlation_id``,
``model``, ``model_version`` and ``row_index`` columns in front of the outputs; error
results become rows of one errors table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from modelbus_contract.arrow_codec import ipc_to_table

ERRORS_DIR = "_errors"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ResultRecord:
    """One record of the results topic."""

    headers: dict[str, str]
    value: bytes | None


def partition_dir(model: str, version: str) -> str:
    """Directory of a model version's files: ``NAME/vVERSION``.

    Not hive-style (``model=NAME``): readers would turn it into a partition column that
    clashes with the ``model`` column every file already carries.
    """
    return f"{_safe(model)}/v{_safe(version)}"


def _safe(part: str) -> str:
    cleaned = _UNSAFE.sub("_", part)
    return "_" + cleaned if not cleaned or cleaned.startswith(".") else cleaned


def to_tables(records: list[ResultRecord]) -> dict[str, pa.Table]:
    """Directory → table for every model version (and the errors) in the batch."""
    ok: dict[str, list[pa.Table]] = {}
    errors: list[dict[str, str]] = []
    for record in records:
        h = record.headers
        cid, model, version = h.get("correlation_id", ""), h.get("model", ""), h.get(
            "model_version", ""
        )
        if h.get("status") == "ok" and record.value:
            try:
                outputs = ipc_to_table(record.value)
            except (pa.ArrowInvalid, OSError) as exc:
                errors.append(_error_row(cid, model, version, "unreadable_result", str(exc)))
                continue
            n = outputs.num_rows
            front = pa.table(
                {
                    "correlation_id": pa.array([cid] * n, pa.string()),
                    "model": pa.array([model] * n, pa.string()),
                    "model_version": pa.array([version] * n, pa.string()),
                    "row_index": pa.array(range(n), pa.int64()),
                }
            )
            for name in outputs.column_names:
                front = front.append_column(outputs.schema.field(name), outputs.column(name))
            ok.setdefault(partition_dir(model, version), []).append(front)
        else:
            errors.append(
                _error_row(
                    cid, model, version, h.get("error_code", "unknown"), h.get("error_message", "")
                )
            )
    tables = {
        directory: pa.concat_tables(parts, promote_options="permissive")
        for directory, parts in ok.items()
    }
    if errors:
        tables[ERRORS_DIR] = pa.Table.from_pylist(errors)
    return tables


def _error_row(cid: str, model: str, version: str, code: str, message: str) -> dict[str, str]:
    return {
        "correlation_id": cid,
        "model": model,
        "model_version": version,
        "error_code": code,
        "error_message": message,
    }
