"""Request columns checked against tensor inputs: accepted and cast, or a clear mismatch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from modelbus_contract.arrow_bounds import cast_bytes
from modelbus_contract.arrow_codec import table_to_ipc
from modelbus_contract.errors import SchemaMismatch, TooLarge
from modelbus_contract.headers import read_headers
from modelbus_contract.messages import Parameter
from modelbus_contract.settings import ModelbusSettings
from modelbus_worker.reply_policy import ReplyPolicy
from modelbus_worker.request import RequestLimits, decode_body, read_envelope, read_request
from modelbus_worker.schema_check import conform, expected_type


def _tensor(name: str, dtype: str, shape: list[int], index: int = 0) -> Parameter:
    return Parameter(index=index, name=name, type="tensor", dtype=dtype, shape=shape)


X = _tensor("input", "float32", [-1, 10])
TARGETS = [t for t in (expected_type(X),) if t is not None]  # what decoding casts to


def _cast_bytes_of(rows: int) -> int:
    return cast_bytes(rows, TARGETS)
X_TAKES = "(the model takes input: tensor float32 [-1, 10] as fixed_size_list<item: float>[10])"
FLOAT10 = pa.list_(pa.float32(), 10)
POLICY = ReplyPolicy.from_settings(ModelbusSettings.model_construct())
LIMITS = RequestLimits(max_bytes=1 << 20, max_rows=1000, max_decoded_bytes=1 << 24,
                       max_timeout_s=60.0)


def _rows(n: int, width: int = 10) -> list[list[float]]:
    return [[float(r * width + c) for c in range(width)] for r in range(n)]


@pytest.mark.parametrize(
    "column",
    [
        pa.array(_rows(3), FLOAT10),
        pa.array(_rows(3), pa.list_(pa.float64())),
        pa.array(_rows(3), pa.large_list(pa.float32())),
        pa.array(_rows(3), pa.list_(pa.float64(), 10)),
        pa.array([[int(v) for v in row] for row in _rows(3)], pa.list_(pa.int64())),
        pa.chunked_array([pa.array(_rows(1), FLOAT10), pa.array(_rows(3)[1:], FLOAT10)]),
    ],
    ids=["exact", "list<double>", "large_list<float>", "fixed_size_list<double>", "list<int64>",
         "chunked"],
)
def test_lists_of_ten_numbers_become_the_tensor_column(column: pa.Array) -> None:
    got = conform(pa.table({"input": column}), [X])
    assert got.schema == pa.schema([pa.field("input", FLOAT10)])
    assert got.column("input").to_pylist() == _rows(3)


def test_nested_and_variable_dimensions() -> None:
    cube = _tensor("cube", "int32", [-1, 2, 3])
    values = [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]]
    got = conform(pa.table({"cube": pa.array(values, pa.list_(pa.list_(pa.int64())))}), [cube])
    assert got.schema.field("cube").type == pa.list_(pa.list_(pa.int32(), 3), 2)
    assert got.column("cube").to_pylist() == values
    free = _tensor("seq", "float64", [-1, -1])
    fixed_two = pa.array([[1, 2], [3, 4]], pa.list_(pa.int64(), 2))
    got = conform(pa.table({"seq": fixed_two}), [free])
    assert got.schema.field("seq").type == pa.list_(pa.float64())
    assert got.column("seq").to_pylist() == [[1.0, 2.0], [3.0, 4.0]]
    one_d = _tensor("v", "float32", [-1])
    assert conform(pa.table({"v": [1, 2]}), [one_d]).schema.field("v").type == pa.float32()


def test_named_tensors_are_put_in_the_signature_order() -> None:
    a, b = _tensor("a", "float64", [-1, 2]), _tensor("b", "int64", [-1], index=1)
    pairs = pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float64(), 2))
    table = pa.table({"b": [5, 6], "a": pairs})
    got = conform(table, [a, b])
    assert got.column_names == ["a", "b"]
    assert got.column("a").to_pylist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        (pa.array([*_rows(2), _rows(1, 9)[0]], pa.list_(pa.float32())),
         "row 2 of 'input' holds 9 values, expected 10"),
        (pa.array(_rows(2, 9), pa.list_(pa.float32(), 9)),
         "'input' is fixed_size_list<item: float>[9], expected fixed_size_list<item: float>[10]"),
        (pa.array([["a"] * 10], pa.list_(pa.string())),
         "'input' is list<item: string>, expected fixed_size_list<item: float>[10]"),
        (pa.array([1.0, 2.0]), "'input' is double, expected fixed_size_list<item: float>[10]"),
        (pa.array([_rows(1)[0], None], pa.list_(pa.float32())),
         "'input' has null rows: a tensor has no nulls"),
        (pa.array([[None, *_rows(1)[0][1:]]], FLOAT10),
         "'input' has null values at depth 1: a tensor has no nulls"),
    ],
    ids=["short row", "fixed size 9", "strings", "scalar", "null row", "null value"],
)
def test_wrong_tensor_columns_are_a_schema_mismatch(column: pa.Array, reason: str) -> None:
    with pytest.raises(SchemaMismatch) as err:
        conform(pa.table({"input": column}), [X])
    assert err.value.message == f"wrong types: {reason} {X_TAKES}"


def test_ragged_variable_dimension_and_inner_lengths_are_refused() -> None:
    free = _tensor("seq", "float32", [-1, -1])
    with pytest.raises(SchemaMismatch) as err:
        conform(pa.table({"seq": pa.array([[1.0], [1.0, 2.0]])}), [free])
    assert err.value.message == (
        "wrong types: 'seq' is ragged at depth 1: its lists hold 1 to 2 values; a tensor needs "
        "the same number in each (the model takes seq: tensor float32 [-1, -1] as "
        "list<item: float>)"
    )
    cube = _tensor("cube", "float32", [-1, 2, 2])
    with pytest.raises(SchemaMismatch) as err:
        conform(pa.table({"cube": pa.array([[[1.0, 2.0], [3.0]]])}), [cube])
    assert err.value.message.startswith(
        "wrong types: 'cube' cannot be cast to fixed_size_list<item: fixed_size_list<item: "
        "float>[2]>[2]: "
    )


def test_a_missing_tensor_and_an_extra_column_are_named() -> None:
    with pytest.raises(SchemaMismatch) as err:
        conform(pa.table({"x": np.zeros(2)}), [X])
    assert err.value.message == f"missing columns ['input']; unexpected columns ['x'] {X_TAKES}"


def test_batched_tensor_tables_conform_and_split_back() -> None:
    tables = [conform(pa.table({"input": pa.array(_rows(n), pa.list_(pa.float64()))}), [X])
              for n in (1, 2)]
    joined = pa.concat_tables(tables)
    assert joined.schema.field("input").type == FLOAT10
    assert joined.slice(1, 2).column("input").to_pylist() == _rows(2)


def test_the_cast_to_a_tensor_column_is_priced_before_decoding() -> None:
    body = table_to_ipc(pa.table({"input": pa.array(_rows(100), pa.list_(pa.float64()))}))
    envelope = read_envelope(None, read_headers([]), POLICY)
    request = read_request(envelope, read_headers([(b"model", b"m")]), body, LIMITS)
    decoded = request.facts.decoded_bytes
    cast = 100 * 10 * 4  # the float32 values of fixed_size_list<float>[10]
    just_enough = replace(LIMITS, max_decoded_bytes=decoded + cast)
    assert decode_body(request, _cast_bytes_of, just_enough).num_rows == 100
    with pytest.raises(TooLarge) as err:
        decode_body(request, _cast_bytes_of, replace(LIMITS, max_decoded_bytes=decoded + cast - 1))
    assert err.value.message == (
        f"the request would take {decoded + cast:,} bytes once decoded and cast to the model's "
        f"input types; the limit is {decoded + cast - 1:,}"
    )
