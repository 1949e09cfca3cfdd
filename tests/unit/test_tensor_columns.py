"""The contract's tensor columns: numpy arrays → fixed_size_list columns (runtime and client),
the column type of a tensor spec, and default names."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from modelbus_client.tables import as_table
from modelbus_contract.tensors import default_tensor_name, tensor_arrow_type, tensor_column


def test_arrays_become_tensor_columns() -> None:
    assert tensor_column(np.array([1.0, 2.0])).type == pa.float64()
    assert tensor_column(np.asarray(np.float32(3.0))).to_pylist() == [3.0]
    cube = np.arange(12, dtype=np.int16).reshape(2, 3, 2)
    column = tensor_column(cube)
    assert column.type == pa.list_(pa.list_(pa.int16(), 2), 3)
    assert column.to_pylist() == cube.tolist()
    turned = cube.transpose(0, 2, 1)  # not contiguous
    assert tensor_column(turned).to_pylist() == turned.tolist()
    words = tensor_column(np.array([["a", "b"], ["c", "d"]], dtype=object))
    assert (words.type, words.to_pylist()) == (pa.list_(pa.string(), 2), [["a", "b"], ["c", "d"]])


def test_the_column_of_an_array_has_the_type_of_its_tensor_spec() -> None:
    x = np.zeros((4, 2, 5), np.float32)
    assert tensor_column(x).type == tensor_arrow_type("float32", [-1, 2, 5])
    assert tensor_arrow_type("complex64", [-1, 2]) is None


def test_default_names() -> None:
    assert [default_tensor_name("inputs", 0, 1), default_tensor_name("outputs", 0, 1)] == [
        "input", "output"
    ]
    assert default_tensor_name("inputs", 2, 3) == "input_2"


def test_the_client_sends_numpy_arrays_of_two_or_more_dimensions_as_tensor_columns() -> None:
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    table = as_table({"input": x, "id": np.array([1, 2, 3]), "names": ["a", "b", "c"]})
    assert table.schema == pa.schema(
        [("input", pa.list_(pa.float32(), 2)), ("id", pa.int64()), ("names", pa.string())]
    )
    assert table.column("input").to_pylist() == x.tolist()
