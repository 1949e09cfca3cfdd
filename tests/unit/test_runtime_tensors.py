"""In-container tensor conversion: Arrow columns → numpy arrays for predict, arrays → columns,
and the runtime serving a fake model whose signature has tensors (no Docker)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from mlflow.models.signature import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec

from modelbus_worker.runtime.arrow_io import ipc_to_table, table_to_ipc
from modelbus_worker.runtime.protocol import Kind
from modelbus_worker.runtime.server import ModelServer
from modelbus_worker.runtime.tensors import (
    TensorSide,
    column_to_array,
    table_to_tensors,
    tensors_to_table,
)

F32 = np.dtype("float32")
ONE_UNNAMED = TensorSide((None,), (F32,))


def test_columns_become_arrays_of_the_tensor_shape_and_dtype() -> None:
    flat = pa.array(np.arange(24, dtype=np.float64))
    two_d = pa.FixedSizeListArray.from_arrays(flat, 6)
    got = column_to_array(two_d, F32)
    assert got.dtype == F32
    np.testing.assert_array_equal(got, np.arange(24, dtype=F32).reshape(4, 6))
    three_d = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(flat, 3), 2)
    np.testing.assert_array_equal(column_to_array(three_d, F32), np.arange(24).reshape(4, 2, 3))
    variable = pa.array([[1, 2, 3], [4, 5, 6]], pa.list_(pa.int64()))
    got = column_to_array(variable, np.dtype("int32"))
    assert (got.dtype, got.tolist()) == (np.dtype("int32"), [[1, 2, 3], [4, 5, 6]])
    one_d = pa.chunked_array([pa.array([1.5]), pa.array([2.5])])
    np.testing.assert_array_equal(column_to_array(one_d, F32), np.array([1.5, 2.5], F32))
    sliced = column_to_array(two_d.slice(1, 2), F32)
    np.testing.assert_array_equal(sliced, np.arange(6, 18, dtype=F32).reshape(2, 6))


def test_a_ragged_column_is_refused() -> None:
    with pytest.raises(ValueError) as err:
        column_to_array(pa.array([[1.0], [1.0, 2.0]]), F32)
    assert str(err.value) == "a ragged tensor column: lists of [1, 2] values"


def test_one_unnamed_input_is_the_bare_array_named_ones_a_dict() -> None:
    column = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(4.0)), 2)
    bare = table_to_tensors(pa.table({"input": column}), ONE_UNNAMED)
    assert isinstance(bare, np.ndarray) and bare.shape == (2, 2) and bare.dtype == F32
    side = TensorSide(("a", "b"), (np.dtype("float64"), np.dtype("int64")))
    named = table_to_tensors(pa.table({"x": column, "y": [7, 8]}), side)  # by position
    assert isinstance(named, dict) and list(named) == ["a", "b"]
    assert named["a"].tolist() == [[0.0, 1.0], [2.0, 3.0]] and named["b"].tolist() == [7, 8]
    with pytest.raises(ValueError) as err:
        table_to_tensors(pa.table({"x": column}), side)
    assert str(err.value) == "the model takes 2 tensors, the request has 1 columns"


def test_predictions_become_columns_named_like_the_catalog() -> None:
    y = np.arange(6, dtype=F32).reshape(3, 2)
    by_onnx_name = tensors_to_table({"y": y}, ONE_UNNAMED)
    assert by_onnx_name is not None
    assert by_onnx_name.schema == pa.schema([("output", pa.list_(pa.float32(), 2))])
    assert by_onnx_name.column("output").to_pylist() == y.tolist()
    named = TensorSide(("score", "label"), (F32, np.dtype("int64")))
    got = tensors_to_table({"label": np.array([1, 2, 3]), "score": y}, named)
    assert got is not None and got.column_names == ["score", "label"]
    assert got.column("label").to_pylist() == [1, 2, 3]
    got = tensors_to_table([y, np.array([1, 2, 3])], named)
    assert got is not None and got.column("score").to_pylist() == y.tolist()
    unexpected = tensors_to_table({"p": y, "q": y, "r": y}, ONE_UNNAMED)
    assert unexpected is not None and unexpected.column_names == ["p", "q", "r"]
    two_unnamed = tensors_to_table((y, y), TensorSide((), ()))
    assert two_unnamed is not None and two_unnamed.column_names == ["output_0", "output_1"]
    assert tensors_to_table({"a": [1, 2]}, ONE_UNNAMED) is None
    assert tensors_to_table(3.0, ONE_UNNAMED) is None


class _Metadata:
    def __init__(self, signature: ModelSignature) -> None:
        self.signature = signature

    def get_input_schema(self) -> Schema | None:
        return self.signature.inputs

    def get_output_schema(self) -> Schema | None:
        return self.signature.outputs


class _TwoTensorModel:
    """Like a pyfunc with inputs a [-1, 2] float64 and b [-1] int64, output [-1, 2]."""

    metadata = _Metadata(ModelSignature(
        Schema([TensorSpec(np.dtype("float64"), (-1, 2), "a"),
                TensorSpec(np.dtype("int64"), (-1,), "b")]),
        Schema([TensorSpec(np.dtype("float64"), (-1, 2))]),
    ))

    def predict(self, data: Any) -> Any:
        assert isinstance(data, dict) and data["a"].dtype == np.float64
        return data["a"] * data["b"][:, None]


def test_server_runs_a_tensor_model_from_arrow_to_arrow() -> None:
    server = ModelServer(_TwoTensorModel())
    table = pa.table({
        "a": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float64(), 2)),
        "b": pa.array([10, 100]),
    })
    kind, body = server.answer(Kind.PREDICT, table_to_ipc(table))
    assert kind == Kind.RESULT
    result = ipc_to_table(body)
    assert result.schema == pa.schema([("output", pa.list_(pa.float64(), 2))])
    assert result.column("output").to_pylist() == [[10.0, 20.0], [300.0, 400.0]]


def test_a_tensor_model_without_output_signature_answers_its_arrays_by_their_names() -> None:
    class NoOutputSignature(_TwoTensorModel):
        metadata = _Metadata(ModelSignature(_TwoTensorModel.metadata.signature.inputs))

        def predict(self, data: Any) -> Any:
            return {"y": data["a"], "n": data["b"]}

    server = ModelServer(NoOutputSignature())
    table = pa.table({"a": pa.array([[1.0, 2.0]], pa.list_(pa.float64(), 2)), "b": [3]})
    kind, body = server.answer(Kind.PREDICT, table_to_ipc(table))
    assert kind == Kind.RESULT
    assert ipc_to_table(body).to_pylist() == [{"y": [1.0, 2.0], "n": 3}]


def test_a_tensor_model_with_column_outputs_answers_columns() -> None:
    class ColumnOutputs(_TwoTensorModel):
        metadata = _Metadata(ModelSignature(
            _TwoTensorModel.metadata.signature.inputs,
            Schema([ColSpec("double", "p"), ColSpec("double", "q")]),
        ))

    server = ModelServer(ColumnOutputs())
    table = pa.table({"a": pa.array([[1.0, 2.0]], pa.list_(pa.float64(), 2)), "b": [3]})
    kind, body = server.answer(Kind.PREDICT, table_to_ipc(table))
    assert kind == Kind.RESULT
    assert ipc_to_table(body).to_pylist() == [{"prediction_0": 3.0, "prediction_1": 6.0}]
