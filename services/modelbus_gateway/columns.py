"""Python values as the Arrow columns a model's catalog entry asks for (pure logic).

A column whose input the entry types is built with that type, so a value that cannot be
one is a ``SchemaMismatch`` naming the column; a tensor input becomes the nested column of
the contract (``modelbus_contract.tensors``). Columns the entry does not know are built as
Arrow infers them and left for the worker to judge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from modelbus_contract.errors import BadRequest, SchemaMismatch
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_contract.tensors import TENSOR_ELEMENT_TYPES, tensor_column

_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                      TypeError, ValueError, OverflowError)


def is_tensor(parameter: Parameter) -> bool:
    return parameter.type == "tensor" or parameter.shape is not None


def tensor_inputs(entry: CatalogEntry | None) -> bool:
    """Whether the model takes tensors (MLflow then reads ``instances``/``inputs`` as
    arrays, not as a table)."""
    return entry is not None and any(is_tensor(p) for p in entry.inputs)


def inputs_by_name(entry: CatalogEntry | None) -> dict[str, Parameter]:
    if entry is None:
        return {}
    return {p.name: p for p in entry.inputs if p.name is not None}


def input_names(entry: CatalogEntry | None) -> list[str]:
    return [p.name for p in entry.inputs if p.name is not None] if entry is not None else []


def _target_type(parameter: Parameter | None) -> pa.DataType | None:
    if parameter is None or parameter.arrow_type is None or is_tensor(parameter):
        return None
    try:
        return pa.type_for_alias(parameter.arrow_type)
    except (ValueError, KeyError):
        return None


def column(name: str, values: Sequence[Any], parameter: Parameter | None) -> pa.Array:
    """One input column from a sequence of values."""
    if parameter is not None and is_tensor(parameter):
        return tensor(name, values, parameter)
    target = _target_type(parameter)
    try:
        return pa.array(values, type=target)
    except _CONVERSION_ERRORS as exc:
        if target is not None:
            raise SchemaMismatch(f"column {name!r} cannot be {target}: {exc}") from None
        raise BadRequest(f"column {name!r} cannot be read: {exc}") from None


def tensor(name: str, values: Any, parameter: Parameter | None) -> pa.Array:
    """One tensor input (first dimension: the rows) as its nested column."""
    dtype = parameter.dtype if parameter is not None else None
    element = TENSOR_ELEMENT_TYPES.get(dtype or "")
    try:
        if element is not None and (pa.types.is_string(element) or pa.types.is_binary(element)):
            array = np.asarray(values, dtype=object)
        else:
            array = np.asarray(values, dtype=dtype if element is not None else None)
    except _CONVERSION_ERRORS as exc:
        if dtype is None:
            raise BadRequest(f"tensor {name!r} is not a regular array: {exc}") from None
        raise SchemaMismatch(f"tensor {name!r} cannot be {dtype}: {exc}") from None
    expected = parameter.shape if parameter is not None else None
    if expected is not None and array.ndim != len(expected):
        raise SchemaMismatch(f"tensor {name!r} has shape {list(array.shape)}, the model takes "
                             f"{expected}")
    try:
        return tensor_column(array)
    except _CONVERSION_ERRORS as exc:
        raise BadRequest(f"tensor {name!r} cannot be read: {exc}") from None


def table_of_columns(columns: Mapping[str, Any], entry: CatalogEntry | None) -> pa.Table:
    """A table from ``{name: values}``; a scalar is a one-row column."""
    known = inputs_by_name(entry)
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            values = [values]
        arrays[str(name)] = column(str(name), values, known.get(str(name)))
    return table_of_arrays(arrays)


def table_of_rows(
    names: Sequence[Any], rows: Sequence[Any], entry: CatalogEntry | None
) -> pa.Table:
    """A table from rows of values in the order of ``names`` (``dataframe_split``)."""
    width = len(names)
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise BadRequest(f"row {number} has not {width} values (one per column)")
    known = inputs_by_name(entry)
    arrays = {
        str(name): column(str(name), [row[i] for row in rows], known.get(str(name)))
        for i, name in enumerate(names)
    }
    return table_of_arrays(arrays)


def table_of_records(records: Sequence[Any], entry: CatalogEntry | None) -> pa.Table:
    """A table from ``[{name: value}, ...]``; a name missing from a record is a null."""
    names: dict[str, None] = {}
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            raise BadRequest(f"record {number} is not an object of column values")
        names.update(dict.fromkeys(record))
    known = inputs_by_name(entry)
    arrays = {
        str(name): column(str(name), [r.get(name) for r in records], known.get(str(name)))
        for name in names
    }
    return table_of_arrays(arrays)


def table_of_arrays(arrays: Mapping[str, pa.Array]) -> pa.Table:
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        raise BadRequest(f"the columns differ in length: {sorted(lengths)}")
    if not arrays:
        raise BadRequest("the request has no columns")
    return pa.table(dict(arrays))
