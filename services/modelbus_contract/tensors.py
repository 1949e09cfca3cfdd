"""Tensor parameters on the wire: their Arrow column type and their default names.

A tensor of shape ``[-1, d1, …, dn]`` travels as one column with one row per element of
its first (batch) dimension: a plain column of the element type for a 1-D tensor, a
``fixed_size_list`` of ``d1`` values for a 2-D one, nested once more per further dimension
(a ``list`` where a dimension is variable, ``-1``).

Needs only pyarrow (numpy where arrays are passed in): the in-container runtime ships this
module beside the Arrow codec.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

# numpy dtype name (as MLflow's TensorSpec records it) -> Arrow element type.
TENSOR_ELEMENT_TYPES: dict[str, pa.DataType] = {
    "float64": pa.float64(),
    "float32": pa.float32(),
    "float16": pa.float16(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int16": pa.int16(),
    "int8": pa.int8(),
    "uint64": pa.uint64(),
    "uint32": pa.uint32(),
    "uint16": pa.uint16(),
    "uint8": pa.uint8(),
    "bool": pa.bool_(),
    "str": pa.string(),
    "object": pa.string(),
    "bytes": pa.binary(),
}

DEFAULT_NAMES = {"inputs": "input", "outputs": "output"}


def tensor_arrow_type(dtype: str, shape: list[int] | tuple[int, ...] | None) -> pa.DataType | None:
    """The Arrow type of the column carrying a tensor, or None for an unknown dtype."""
    element = TENSOR_ELEMENT_TYPES.get(dtype)
    if element is None:
        return None
    column_type = element
    for size in reversed(list(shape or [])[1:]):
        column_type = pa.list_(column_type) if size < 0 else pa.list_(column_type, size)
    return column_type


def default_tensor_name(kind: str, index: int, unnamed: int) -> str:
    """The name of an unnamed tensor: ``input``/``output`` when it is its side's only
    unnamed tensor, else ``input_INDEX``/``output_INDEX`` (its 0-based position)."""
    base = DEFAULT_NAMES[kind]
    return base if unnamed == 1 else f"{base}_{index}"


def tensor_column(array: Any) -> pa.Array:
    """A numpy array as a tensor column: one row per element of its first dimension, the
    rest nested in ``fixed_size_list`` values (a 0-D array is one row)."""
    shape = tuple(array.shape) or (1,)
    flat = array.reshape(-1)
    column = pa.array(flat.tolist() if flat.dtype == object else flat)
    for size in reversed(shape[1:]):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    return column
