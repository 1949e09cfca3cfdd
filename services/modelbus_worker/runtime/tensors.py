"""Tensor signatures in the container: Arrow columns in, numpy arrays to ``predict``, and
the arrays it returns back out as columns.

A tensor column has one row per element of the tensor's first dimension and the rest of
the tensor nested in ``fixed_size_list`` (or, for a variable dimension, ``list``) values;
the worker has already checked and cast it to the signature's type and put the columns in
the signature's order (see ``modelbus_contract.tensors``). A single unnamed input tensor is
passed as the bare array, named ones as a dict by the names the model's signature uses.

Standalone like ``arrow_io`` (numpy, pyarrow and the contract's tensor module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from modelbus_contract.tensors import default_tensor_name, tensor_column

Array = np.ndarray[Any, Any]
Tensors = Array | dict[str, Array]


@dataclass(frozen=True)
class TensorSide:
    """One side of a tensor signature: each tensor's name (None if unnamed) and dtype."""

    names: tuple[str | None, ...]
    dtypes: tuple[np.dtype[Any], ...]

    def column_names(self, kind: str) -> list[str]:
        """The names the catalog gives these tensors (their own, else the default)."""
        unnamed = sum(1 for n in self.names if n is None)
        return [n or default_tensor_name(kind, i, unnamed) for i, n in enumerate(self.names)]


def tensor_side(schema: Any) -> TensorSide | None:
    """The tensors of an MLflow ``Schema``; None when it is absent or describes columns."""
    if schema is None or not schema.is_tensor_spec():
        return None
    specs = schema.inputs
    return TensorSide(tuple(s.name for s in specs), tuple(np.dtype(s.type) for s in specs))


def model_tensor_sides(model: Any) -> tuple[TensorSide | None, TensorSide | None]:
    """Input and output tensors of a loaded pyfunc model (None for a side without them)."""
    metadata = getattr(model, "metadata", None)
    if metadata is None or not hasattr(metadata, "get_input_schema"):
        return None, None
    inputs, output_schema = tensor_side(metadata.get_input_schema()), metadata.get_output_schema()
    if output_schema is None and inputs is not None:
        # A tensor model without an output signature: its arrays, named as it names them.
        return inputs, TensorSide((), ())
    return inputs, tensor_side(output_schema)


def _is_list(dtype: pa.DataType) -> bool:
    return bool(pat.is_list(dtype) or pat.is_large_list(dtype) or pat.is_fixed_size_list(dtype))


def column_to_array(column: pa.ChunkedArray | pa.Array, dtype: np.dtype[Any]) -> Array:
    """A tensor column as one numpy array of shape ``(rows, d1, …)`` and type ``dtype``."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    shape = [len(values)]
    while _is_list(values.type):
        if pat.is_fixed_size_list(values.type):
            shape.append(values.type.list_size)
        else:
            lengths = pc.unique(pc.list_value_length(values)).to_pylist()
            if len(lengths) > 1:
                raise ValueError(f"a ragged tensor column: lists of {sorted(lengths)} values")
            shape.append(lengths[0] if lengths else 0)
        values = values.flatten()
    flat = values.to_numpy(zero_copy_only=False)
    return np.asarray(flat.reshape(shape), dtype=dtype)


def table_to_tensors(table: pa.Table, side: TensorSide) -> Tensors:
    """The request's columns (in the signature's order) as ``predict``'s tensor input."""
    if table.num_columns != len(side.names):
        raise ValueError(
            f"the model takes {len(side.names)} tensors, the request has {table.num_columns} "
            "columns"
        )
    arrays = [column_to_array(table.column(i), dtype) for i, dtype in enumerate(side.dtypes)]
    if len(arrays) == 1 and side.names[0] is None:
        return arrays[0]
    return dict(zip(side.column_names("inputs"), arrays, strict=True))


def _arrays(prediction: Any) -> list[tuple[str | None, Any]] | None:
    """The arrays of a tensor prediction with the names it gives them; None for any other
    kind of prediction (a frame, a scalar, …)."""
    if isinstance(prediction, np.ndarray):
        return [(None, prediction)]
    if isinstance(prediction, Mapping) and prediction:
        if all(isinstance(v, np.ndarray) for v in prediction.values()):
            return [(str(k), v) for k, v in prediction.items()]
        return None
    if (
        isinstance(prediction, Sequence)
        and not isinstance(prediction, str)
        and prediction
        and all(isinstance(v, np.ndarray) for v in prediction)
    ):
        return [(None, v) for v in prediction]
    return None


def tensors_to_table(prediction: Any, side: TensorSide) -> pa.Table | None:
    """A prediction of tensors as a table with a column per output tensor, named as the
    catalog names them; None when the prediction is not arrays (convert it as columns)."""
    arrays = _arrays(prediction)
    if arrays is None:
        return None
    names = side.column_names("outputs")
    by_name = {n: a for n, a in arrays if n is not None}
    if len(arrays) == len(names):
        ordered: list[Any] | None = None
        if all(n in by_name for n in side.names if n is not None):  # by the signature's names
            ordered = [by_name[n] if n is not None else a
                       for n, (_, a) in zip(side.names, arrays, strict=True)]
        elif not by_name:  # arrays without names: by position
            ordered = [a for _, a in arrays]
        if ordered is not None:
            return pa.table([tensor_column(np.asarray(a)) for a in ordered], names=names)
    # Not what the signature said: keep what the model named, default names for the rest.
    labels = [n or default_tensor_name("outputs", i, len(arrays)) for i, (n, _) in
              enumerate(arrays)]
    return pa.table([tensor_column(np.asarray(a)) for _, a in arrays], names=labels)
