"""MLflow's scoring protocol (``/invocations``), as ``mlflow models serve`` speaks it, and
Arrow IPC streams beside it: request bodies to Arrow, answers to ``{"predictions": ...}``
(pure logic). Codecs are keyed by content type."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from modelbus_contract.arrow_bounds import ArrowStreamInvalid, ArrowStreamTooLarge, decode_table
from modelbus_contract.arrow_codec import ARROW_STREAM, table_to_ipc
from modelbus_contract.errors import BadRequest, TooLarge
from modelbus_contract.messages import CatalogEntry

from .columns import (
    input_names,
    is_tensor,
    table_of_columns,
    table_of_records,
    table_of_rows,
    tensor,
    tensor_inputs,
)
from .errors import GatewayRefusal
from .json_limits import check_json_bounds

JSON = "application/json"
CSV = "text/csv"
INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


@dataclass(frozen=True)
class BodyLimits:
    """What a request body may hold (``gateway_max_*`` settings)."""

    max_json_depth: int = 32
    max_json_elements: int = 5_000_000
    max_rows: int = 1_000_000
    max_decoded_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class ScoringInput:
    """A decoded request: the table to send, or an Arrow stream sent as it came."""

    table: pa.Table | None = None
    ipc: bytes | None = None


Decoder = Callable[[bytes, "CatalogEntry | None", BodyLimits], ScoringInput]


def media_type(content_type: str | None) -> str:
    """``text/csv; charset=utf-8`` → ``text/csv``."""
    return (content_type or "").split(";")[0].strip().lower()


def load_json(body: bytes, limits: BodyLimits) -> Any:
    """Parse a JSON body after its bounds are checked; ``BadRequest`` when it is not JSON."""
    check_json_bounds(body, limits.max_json_depth, limits.max_json_elements)
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def decode_json(body: bytes, entry: CatalogEntry | None, limits: BodyLimits) -> ScoringInput:
    """One of ``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs`` (with
    ``params``, which a model without a params schema ignores, as serve does)."""
    data = load_json(body, limits)
    if not isinstance(data, dict):
        raise BadRequest(f"the JSON body must be an object with one of {', '.join(INPUT_KEYS)}")
    given = [key for key in INPUT_KEYS if key in data]
    if len(given) != 1:
        raise BadRequest(f"the JSON body must have exactly one of {', '.join(INPUT_KEYS)}; "
                         f"it has {given or 'none'}")
    key = given[0]
    value = data[key]
    if key == "dataframe_split":
        return ScoringInput(_split(value, entry))
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise BadRequest("dataframe_records must be a list of records")
        return ScoringInput(table_of_records(value, entry))
    return ScoringInput(_tensors_or_table(key, value, entry))


def _split(value: Any, entry: CatalogEntry | None) -> pa.Table:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise BadRequest("dataframe_split must be an object with `columns` and `data`")
    data = value["data"]
    columns = value.get("columns")
    if columns is None:
        width = len(data[0]) if data and isinstance(data[0], list) else 1
        columns = input_names(entry)[:width] or [str(i) for i in range(width)]
    if not isinstance(columns, list):
        raise BadRequest("dataframe_split `columns` must be a list of names")
    if data and not isinstance(data[0], list) and len(columns) == 1:
        data = [[v] for v in data]
    return table_of_rows(columns, data, entry)


def _tensors_or_table(key: str, value: Any, entry: CatalogEntry | None) -> pa.Table:
    """``instances``/``inputs``: named arrays (an object), records, or one unnamed input."""
    if tensor_inputs(entry):
        assert entry is not None
        tensors = [p for p in entry.inputs if is_tensor(p)]
        by_name = {p.name: p for p in tensors}
        if isinstance(value, dict):
            return pa.table({str(n): tensor(str(n), v, by_name.get(str(n)))
                             for n, v in value.items()})
        if value and isinstance(value, list) and all(isinstance(r, dict) for r in value):
            names = list(value[0])
            return pa.table({str(n): tensor(str(n), [r.get(n) for r in value],
                                            by_name.get(str(n))) for n in names})
        if len(tensors) != 1 or tensors[0].name is None:
            raise BadRequest(f"{key} must name each of the model's {len(tensors)} tensors")
        return pa.table({tensors[0].name: tensor(tensors[0].name, value, tensors[0])})
    if isinstance(value, dict):
        return table_of_columns(value, entry)
    if not isinstance(value, list):
        raise BadRequest(f"{key} must be a list or an object of columns")
    if value and all(isinstance(r, dict) for r in value):
        return table_of_records(value, entry)
    names = input_names(entry)
    if value and all(isinstance(r, list) for r in value):
        width = len(value[0])
        return table_of_rows(names[:width] if len(names) >= width
                             else [str(i) for i in range(width)], value, entry)
    return table_of_columns({names[0] if names else "0": value}, entry)


def decode_csv(body: bytes, entry: CatalogEntry | None, limits: BodyLimits) -> ScoringInput:
    """A CSV body with a header line, read as ``mlflow models serve`` reads it (pandas)."""
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not CSV with a header line: {exc}") from None
    if len(frame) > limits.max_rows:
        raise TooLarge(f"the CSV body has {len(frame):,} rows, over the limit of "
                       f"{limits.max_rows:,}")
    try:
        return ScoringInput(pa.Table.from_pandas(frame, preserve_index=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise BadRequest(f"the CSV body cannot be read: {exc}") from None


def decode_arrow(body: bytes, entry: CatalogEntry | None, limits: BodyLimits) -> ScoringInput:
    """An Arrow IPC stream: checked within the bounds, then sent on as it came."""
    try:
        decode_table(body, max_rows=limits.max_rows, max_decoded_bytes=limits.max_decoded_bytes)
    except ArrowStreamTooLarge as exc:
        raise TooLarge(f"the Arrow stream is too large: {exc}") from None
    except ArrowStreamInvalid as exc:
        raise BadRequest(f"the body is not an Arrow IPC stream: {exc}") from None
    return ScoringInput(ipc=body)


DECODERS: dict[str, Decoder] = {
    JSON: decode_json,
    CSV: decode_csv,
    ARROW_STREAM: decode_arrow,
}


def decode(
    content_type: str | None, body: bytes, entry: CatalogEntry | None, limits: BodyLimits
) -> ScoringInput:
    """The codec of ``content_type`` (JSON when none is given, as serve assumes)."""
    kind = media_type(content_type) or JSON
    decoder = DECODERS.get(kind)
    if decoder is None:
        raise GatewayRefusal("unsupported_media_type",
                             f"content type {kind!r} is not one of {', '.join(DECODERS)}")
    return decoder(body, entry, limits)


def predictions(table: pa.Table, entry: CatalogEntry | None) -> Any:
    """What serve answers for the model's output: the array for a tensor output, an object
    of arrays for several, the records of a table."""
    outputs = entry.outputs if entry is not None else []
    if outputs and all(is_tensor(p) for p in outputs):
        if table.num_columns == 1:
            return table.column(0).to_pylist()
        return {name: table.column(name).to_pylist() for name in table.column_names}
    return table.to_pylist()


def encode_predictions(table: pa.Table, entry: CatalogEntry | None, accept: str | None
                       ) -> tuple[bytes, str]:
    """The answer body and its content type: an Arrow stream when ``accept`` asks for one,
    else ``{"predictions": ...}``."""
    if ARROW_STREAM in (accept or ""):
        return table_to_ipc(table), ARROW_STREAM
    body = json.dumps({"predictions": predictions(table, entry)}, default=str)
    return body.encode(), JSON
