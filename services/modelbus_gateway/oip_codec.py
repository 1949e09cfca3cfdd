"""The Open Inference Protocol (V2 REST) with JSON tensors, and the binary tensor data
extension that Triton's clients use by default (pure logic): request tensors to an Arrow
table, result columns to output tensors, catalog entries to model metadata."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from modelbus_contract.errors import BadRequest
from modelbus_contract.messages import CatalogEntry, Parameter

from .columns import column, inputs_by_name, is_tensor, table_of_arrays, tensor
from .mlflow_codec import BodyLimits, load_json

BINARY_HEADER = "Inference-Header-Content-Length"

DATATYPE_OF_DTYPE = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32",
    "uint64": "UINT64", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "str": "BYTES",
    "object": "BYTES", "bytes": "BYTES",
}
DTYPE_OF_DATATYPE = {v: k for k, v in DATATYPE_OF_DTYPE.items() if k not in ("str", "object")}
DTYPE_OF_DATATYPE["BYTES"] = "object"
# MLflow column types → OIP datatypes.
DATATYPE_OF_TYPE = {
    "double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32",
    "boolean": "BOOL", "string": "BYTES", "binary": "BYTES", "datetime": "BYTES",
}


def parameter_metadata(parameter: Parameter) -> dict[str, Any]:
    """One input or output of a model's metadata: name, datatype, shape, semtype."""
    if is_tensor(parameter):
        datatype = DATATYPE_OF_DTYPE.get(parameter.dtype or "", "BYTES")
        shape = list(parameter.shape or [-1])
    else:
        datatype = DATATYPE_OF_TYPE.get(parameter.type or "", "BYTES")
        shape = [-1]
    meta: dict[str, Any] = {"name": parameter.name or f"input_{parameter.index}",
                            "datatype": datatype, "shape": shape}
    extra = {k: v for k, v in (("semtype", parameter.semtype),
                               ("mlflow_type", parameter.type)) if v}
    if extra:
        meta["parameters"] = extra
    return meta


def model_metadata(entry: CatalogEntry, versions: list[str]) -> dict[str, Any]:
    """The V2 model metadata of one catalog entry."""
    return {
        "name": entry.name,
        "versions": versions,
        "platform": "mlflow",
        "inputs": [parameter_metadata(p) for p in entry.inputs],
        "outputs": [parameter_metadata(p) for p in entry.outputs],
        "parameters": {"version": entry.version, "aliases": entry.aliases,
                       "flavors": entry.flavors},
    }


@dataclass(frozen=True)
class InferRequest:
    """A decoded V2 inference request: its id, the table, and how outputs are wanted."""

    id: str | None
    table: pa.Table
    binary_outputs: bool = False
    outputs: list[str] | None = None
    binary_names: set[str] = field(default_factory=set)


def _split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        size = int(header_length)
    except ValueError:
        raise BadRequest(f"{BINARY_HEADER} is not a number: {header_length[:40]!r}") from None
    if not 0 <= size <= len(body):
        raise BadRequest(f"{BINARY_HEADER} {size} is outside the body of {len(body)} bytes")
    return body[:size], body[size:]


def _binary_values(raw: bytes, datatype: str, name: str) -> Any:
    if datatype == "BYTES":
        values, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise BadRequest(f"input {name!r}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + length > len(raw):
                raise BadRequest(f"input {name!r}: truncated BYTES element")
            values.append(raw[pos:pos + length].decode("utf-8", "replace"))
            pos += length
        return np.asarray(values, dtype=object)
    dtype = DTYPE_OF_DATATYPE.get(datatype)
    if dtype is None:
        raise BadRequest(f"input {name!r}: unknown datatype {datatype!r}")
    item = np.dtype(dtype).itemsize
    if len(raw) % item:
        raise BadRequest(f"input {name!r}: {len(raw)} bytes are not whole {datatype} values")
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))


def _json_values(data: Any, datatype: str, name: str) -> np.ndarray[Any, Any]:
    try:
        values = np.asarray(data, dtype=DTYPE_OF_DATATYPE.get(datatype))
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(f"input {name!r}: `data` is not {datatype or 'a'} values: {exc}"
                         ) from None
    if values.dtype == object and datatype != "BYTES":
        raise BadRequest(f"input {name!r}: `data` is not a regular array of {datatype} values")
    return values


def decode_infer(
    body: bytes, header_length: str | None, entry: CatalogEntry | None, limits: BodyLimits
) -> InferRequest:
    """A V2 inference request (JSON, or JSON then binary tensor data) as a table."""
    header, binary = _split_binary(body, header_length)
    data = load_json(header, limits)
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
        raise BadRequest("the request must be an object with a list of `inputs`")
    known = inputs_by_name(entry)
    arrays: dict[str, pa.Array] = {}
    offset = 0
    for number, item in enumerate(data["inputs"]):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest(f"input {number} must be an object with a `name`")
        name, datatype = item["name"], str(item.get("datatype", ""))
        shape = item.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise BadRequest(f"input {name!r}: `shape` must be a list of sizes")
        size = (item.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadRequest(f"input {name!r}: binary_data_size is outside the body")
            values = _binary_values(binary[offset:offset + size], datatype, name)
            offset += size
        elif "data" in item:
            values = _json_values(item["data"], datatype, name)
        else:
            raise BadRequest(f"input {name!r} has neither `data` nor binary data")
        count = int(np.prod(shape)) if shape else 1
        if values.size != count:
            raise BadRequest(f"input {name!r}: {values.size} values do not fill shape {shape}")
        values = values.reshape(shape or [1])
        parameter = known.get(name)
        if (parameter is not None and not is_tensor(parameter)) or (
                parameter is None and values.ndim == 1):
            arrays[name] = column(name, values.reshape(-1).tolist(), parameter)
        else:
            arrays[name] = tensor(name, values, parameter)
    outputs = data.get("outputs")
    wanted = ([o["name"] for o in outputs if isinstance(o, dict) and "name" in o]
              if isinstance(outputs, list) else None)
    binary_names = {
        o["name"] for o in (outputs or []) if isinstance(o, dict)
        and (o.get("parameters") or {}).get("binary_data")
    }
    params = data.get("parameters") or {}
    return InferRequest(
        str(data["id"]) if data.get("id") is not None else None, table_of_arrays(arrays),
        binary_outputs=bool(isinstance(params, dict) and params.get("binary_data_output")),
        outputs=wanted or None, binary_names=binary_names,
    )


def _tensor_of(array: pa.ChunkedArray) -> tuple[np.ndarray[Any, Any], str]:
    rows = len(array)
    combined = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    inner: list[int] = []
    values: pa.Array = combined
    while pa.types.is_fixed_size_list(values.type):
        inner.append(values.type.list_size)
        values = values.flatten()
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        nested = np.asarray(combined.to_pylist())
        return nested, _datatype(nested.dtype)
    flat = values.to_numpy(zero_copy_only=False)
    if flat.dtype.kind in "OUS":
        flat = flat.astype(object)
    return flat.reshape([rows, *inner]), _datatype(flat.dtype)


def _datatype(dtype: np.dtype[Any]) -> str:
    return DATATYPE_OF_DTYPE.get(str(dtype), "BYTES")


def _binary_of(values: np.ndarray[Any, Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for v in values.reshape(-1):
            raw = v if isinstance(v, bytes) else str(v).encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()


def encode_infer(
    table: pa.Table, request: InferRequest, model: str, version: str
) -> tuple[bytes, dict[str, str]]:
    """The V2 inference response (with the binary extension where the request asked for
    it) and its extra headers."""
    names = request.outputs or table.column_names
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name in names:
        if name not in table.column_names:
            raise BadRequest(f"the model has no output {name!r} (it has "
                             f"{', '.join(table.column_names)})")
        values, datatype = _tensor_of(table.column(name))
        out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(values.shape)}
        if request.binary_outputs or name in request.binary_names:
            blob = _binary_of(values, datatype)
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = values.reshape(-1).tolist()
        outputs.append(out)
    response: dict[str, Any] = {"model_name": model, "model_version": version,
                                "outputs": outputs}
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response, default=str).encode()
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(blobs), {"Content-Type": "application/octet-stream",
                                      BINARY_HEADER: str(len(header))}
