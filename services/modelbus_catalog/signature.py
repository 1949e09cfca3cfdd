"""Reading an MLmodel ``signature`` block into plain columns (pure logic).

MLmodel stores each side of a signature as a JSON string: a list of column specs
(``{"type": "string", "name": "Molecule", "required": true}``) or tensor specs
(``{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}``). A tensor
becomes type ``tensor`` with its dtype, shape and the Arrow type of the column carrying it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelbus_contract.tensors import tensor_arrow_type

# MLflow DataType name -> Arrow type name (as ``str(pyarrow type)`` prints it).
MLFLOW_TO_ARROW: dict[str, str] = {
    "string": "string",
    "double": "double",
    "float": "float",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "binary": "binary",
    "datetime": "timestamp[ns]",
}


@dataclass(frozen=True)
class SignatureColumn:
    """One input or output as the signature declares it."""

    name: str | None
    type: str
    arrow_type: str | None
    optional: bool = False
    dtype: str | None = None  # tensors only: numpy element type
    shape: tuple[int, ...] | None = None  # tensors only: -1 for a variable dimension


class SignatureError(ValueError):
    """The signature block is present but cannot be read."""


def parse_side(raw: str | list[Any] | None) -> list[SignatureColumn] | None:
    """Columns of one signature side, or None when the side is absent."""
    if raw is None:
        return None
    try:
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise SignatureError(f"signature is not valid JSON: {exc}") from exc
    if not isinstance(specs, list):
        raise SignatureError("signature side is not a list of column or tensor specs")
    return [_column(spec) for spec in specs]


def _column(spec: Any) -> SignatureColumn:
    if not isinstance(spec, dict) or "type" not in spec:
        raise SignatureError(f"unreadable signature spec: {spec!r}")
    name = spec.get("name")
    optional = spec.get("required") is False or spec.get("optional") is True
    kind = spec["type"]
    if kind == "tensor":
        return _tensor(name, spec.get("tensor-spec"))
    if isinstance(kind, str):
        return SignatureColumn(name, kind, MLFLOW_TO_ARROW.get(kind), optional)
    # Array / object / map types are stored as nested dicts.
    return SignatureColumn(name, json.dumps(kind, sort_keys=True), None, optional)


def _tensor(name: str | None, tensor: Any) -> SignatureColumn:
    """A tensor spec: ``{"dtype": "float32", "shape": [-1, 10]}``."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("dtype"), str):
        raise SignatureError(f"tensor spec without a dtype: {tensor!r}")
    dtype, raw_shape = tensor["dtype"], tensor.get("shape")
    if raw_shape is None:
        raw_shape = [-1]
    if not isinstance(raw_shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in raw_shape
    ):
        raise SignatureError(f"tensor shape is not a list of sizes: {raw_shape!r}")
    shape = tuple(raw_shape)
    arrow = tensor_arrow_type(dtype, shape)
    return SignatureColumn(
        name=name,
        type="tensor",
        arrow_type=str(arrow) if arrow is not None else None,
        dtype=dtype,
        shape=shape,
    )
