"""Tensor specs of an MLmodel signature → catalog parameters with dtype, shape and names."""

from __future__ import annotations

import json

import pytest

from modelbus_catalog.entry import ModelFacts, build_entry
from modelbus_catalog.signature import SignatureColumn, SignatureError, parse_side
from modelbus_contract.messages import DiscoveryEvent

PYFUNC = {"python_function": {"python_version": "3.11.7", "loader_module": "mlflow.onnx"}}


def _tensor(dtype: str, shape: list[int] | None, name: str | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}
    if name is not None:
        spec["name"] = name
    return spec


def _event(tags: dict[str, str] | None = None) -> DiscoveryEvent:
    return DiscoveryEvent(kind="found", name="m", version="1",
                          model_tags={"datagrok": "", **(tags or {})}, fingerprint="x")


def _facts(inputs: list[dict[str, object]], outputs: list[dict[str, object]]) -> ModelFacts:
    return ModelFacts(
        signature={"inputs": json.dumps(inputs), "outputs": json.dumps(outputs)}, flavors=PYFUNC
    )


@pytest.mark.parametrize(
    ("dtype", "shape", "arrow_type"),
    [
        ("float32", [-1], "float"),
        ("float64", [-1, 10], "fixed_size_list<item: double>[10]"),
        ("int64", [-1, 4, 5], "fixed_size_list<item: fixed_size_list<item: int64>[5]>[4]"),
        ("uint8", [-1, 28, 28, 3],
         "fixed_size_list<item: fixed_size_list<item: fixed_size_list<item: uint8>[3]>[28]>[28]"),
        ("float32", [-1, -1], "list<item: float>"),
        ("int32", [-1, -1, 3], "list<item: fixed_size_list<item: int32>[3]>"),
        ("bool", [-1, 2], "fixed_size_list<item: bool>[2]"),
        ("str", [-1], "string"),
        ("float32", [1, 10], "fixed_size_list<item: float>[10]"),
    ],
)
def test_tensor_spec_becomes_dtype_shape_and_arrow_type(
    dtype: str, shape: list[int], arrow_type: str
) -> None:
    assert parse_side([_tensor(dtype, shape)]) == [
        SignatureColumn(None, "tensor", arrow_type, dtype=dtype, shape=tuple(shape))
    ]


def test_unknown_dtype_keeps_dtype_and_shape_without_arrow_type() -> None:
    assert parse_side([_tensor("complex64", [-1, 2], "z")]) == [
        SignatureColumn("z", "tensor", None, dtype="complex64", shape=(-1, 2))
    ]


def test_tensor_without_shape_is_one_value_per_row() -> None:
    assert parse_side([_tensor("float64", None)]) == [
        SignatureColumn(None, "tensor", "double", dtype="float64", shape=(-1,))
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "tensor"}, "tensor spec without a dtype: None"),
        ({"type": "tensor", "tensor-spec": {"shape": [-1]}},
         "tensor spec without a dtype: {'shape': [-1]}"),
        (_tensor("float32", "10"), "tensor shape is not a list of sizes: '10'"),  # type: ignore[arg-type]
        (_tensor("float32", [-1, -2]), "tensor shape is not a list of sizes: [-1, -2]"),
        (_tensor("float32", [-1, True]), "tensor shape is not a list of sizes: [-1, True]"),
    ],
)
def test_unreadable_tensor_specs(spec: dict[str, object], message: str) -> None:
    with pytest.raises(SignatureError) as err:
        parse_side([spec])
    assert str(err.value) == message


def test_unnamed_single_tensors_are_called_input_and_output() -> None:
    entry = build_entry(
        _event(), _facts([_tensor("float32", [-1, 10])], [_tensor("float32", [-1, 3])])
    )
    assert entry.status == "ready"
    assert entry.problems == []
    assert [p.model_dump(exclude={"semtype", "optional"}) for p in entry.inputs] == [
        {"index": 0, "name": "input", "type": "tensor", "dtype": "float32", "shape": [-1, 10],
         "arrow_type": "fixed_size_list<item: float>[10]"}
    ]
    assert [p.model_dump(exclude={"semtype", "optional"}) for p in entry.outputs] == [
        {"index": 0, "name": "output", "type": "tensor", "dtype": "float32", "shape": [-1, 3],
         "arrow_type": "fixed_size_list<item: float>[3]"}
    ]


def test_named_tensors_keep_their_names() -> None:
    entry = build_entry(_event(), _facts(
        [_tensor("float64", [-1, 3], "a"), _tensor("int64", [-1], "b")],
        [_tensor("float64", [-1], "y")],
    ))
    assert [(p.name, p.dtype, p.shape, p.arrow_type) for p in entry.inputs] == [
        ("a", "float64", [-1, 3], "fixed_size_list<item: double>[3]"),
        ("b", "int64", [-1], "int64"),
    ]
    assert [p.name for p in entry.outputs] == ["y"]
    assert entry.status == "ready"


def test_several_unnamed_tensors_are_numbered_and_a_tag_wins_over_the_default() -> None:
    entry = build_entry(
        _event({"datagrok-inputs-1-name": "mask", "datagrok-outputs-0-semtype": "Score"}),
        _facts(
            [_tensor("float32", [-1, 2]), _tensor("float32", [-1, 2]), _tensor("int8", [-1])],
            [_tensor("float32", [-1])],
        ),
    )
    assert [p.name for p in entry.inputs] == ["input_0", "mask", "input_2"]
    assert [(p.name, p.semtype) for p in entry.outputs] == [("output", "Score")]
    assert entry.status == "ready"
    assert entry.problems == []


def test_column_signatures_get_no_tensor_fields() -> None:
    entry = build_entry(
        _event(), _facts([{"type": "double", "name": "x"}], [{"type": "long", "name": "y"}])
    )
    assert [(p.type, p.arrow_type, p.dtype, p.shape) for p in (*entry.inputs, *entry.outputs)] == [
        ("double", "double", None, None), ("long", "int64", None, None)
    ]
