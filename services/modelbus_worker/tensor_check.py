"""Checking one request column against a tensor input (pure logic).

A tensor column holds one row per element of the tensor's first dimension; the rest of the
tensor is a ``fixed_size_list`` per fixed dimension (nested) or a ``list`` per variable one
(see ``modelbus_contract.tensors``). A request may send ``list`` or ``large_list`` where a
``fixed_size_list`` is expected, and any element type that casts to the tensor's without
changing meaning; the column is cast to the exact type. Every row must hold the same
number of values at every level (a tensor is rectangular) and no nulls.
"""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from modelbus_contract.messages import Parameter
from modelbus_contract.tensors import tensor_arrow_type

from .coercion import ColumnMismatch, coercible


def is_tensor(param: Parameter) -> bool:
    return param.type == "tensor" and param.dtype is not None


@lru_cache(maxsize=256)
def _tensor_type(dtype: str, shape: tuple[int, ...]) -> pa.DataType | None:
    return tensor_arrow_type(dtype, shape)


def tensor_type(param: Parameter) -> pa.DataType | None:
    """The exact Arrow type of the tensor's column, None for a dtype Arrow cannot carry."""
    assert param.dtype is not None
    return _tensor_type(param.dtype, tuple(param.shape or ()))


def describe(param: Parameter) -> str:
    """How an error message shows the tensor: ``tensor float32 [-1, 10] as <arrow type>``."""
    shape = list(param.shape) if param.shape is not None else "?"
    target = tensor_type(param)
    return f"tensor {param.dtype} {shape}" + (f" as {target}" if target is not None else "")


def _is_list(dtype: pa.DataType) -> bool:
    return bool(pat.is_list(dtype) or pat.is_large_list(dtype) or pat.is_fixed_size_list(dtype))


def tensor_coercible(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether a column of ``source`` may be cast to the tensor column type ``target``."""
    if not _is_list(target):
        return not _is_list(source) and coercible(source, target)
    if not _is_list(source):
        return False
    if (
        pat.is_fixed_size_list(source)
        and pat.is_fixed_size_list(target)
        and source.list_size != target.list_size
    ):
        return False
    return tensor_coercible(source.value_type, target.value_type)


def conform_tensor(name: str, column: pa.ChunkedArray, param: Parameter) -> pa.ChunkedArray:
    """``column`` cast to the tensor's column type; raises ColumnMismatch saying why not."""
    target = tensor_type(param)
    if target is None:
        return column  # an element type Arrow cannot carry: the model itself will judge
    if not column.type.equals(target):
        if not tensor_coercible(column.type, target):
            raise ColumnMismatch(f"{name!r} is {column.type}, expected {target}")
        if pat.is_fixed_size_list(target) and not pat.is_fixed_size_list(column.type):
            _check_lengths(name, column, target.list_size)
        try:
            column = column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise ColumnMismatch(f"{name!r} cannot be cast to {target}: {reason}") from None
    _check_rectangular(name, column)
    return column


def _check_lengths(name: str, column: pa.ChunkedArray, size: int) -> None:
    """Every row of a list column holds ``size`` values (the first one that does not, named)."""
    lengths = pc.list_value_length(column)
    wrong = pc.fill_null(pc.not_equal(lengths, size), False)
    first = pc.index(wrong, True).as_py()
    if first >= 0:
        raise ColumnMismatch(
            f"row {first} of {name!r} holds {lengths[first].as_py()} values, expected {size}"
        )


def _check_rectangular(name: str, column: pa.ChunkedArray | pa.Array) -> None:
    """No nulls at any level, and the same number of values in every row of a variable
    dimension (so the column makes one numpy array)."""
    level = 0
    values: pa.ChunkedArray | pa.Array = column
    while True:
        if values.null_count:
            where = "rows" if level == 0 else f"values at depth {level}"
            raise ColumnMismatch(f"{name!r} has null {where}: a tensor has no nulls")
        if not _is_list(values.type):
            return
        if not pat.is_fixed_size_list(values.type) and len(values):
            lengths = pc.min_max(pc.list_value_length(values))
            low, high = lengths["min"].as_py(), lengths["max"].as_py()
            if low != high:
                raise ColumnMismatch(
                    f"{name!r} is ragged at depth {level + 1}: its lists hold {low} to {high} "
                    "values; a tensor needs the same number in each"
                )
        values = pc.list_flatten(values)
        level += 1
