"""The gateway's codecs: every MLflow scoring input format, Arrow, CSV and the Open
Inference Protocol (JSON and binary tensors) to the table the workers get, and answers back."""

from __future__ import annotations

import json
import struct

import numpy as np
import pyarrow as pa
import pytest
from tests.support.gateway_fakes import column_entry, tensor_entry

from modelbus_contract.arrow_codec import table_to_ipc
from modelbus_contract.errors import BadRequest, SchemaMismatch, TooLarge
from modelbus_gateway import mlflow_codec, oip_codec
from modelbus_gateway.json_limits import check_json_bounds
from modelbus_gateway.mlflow_codec import BodyLimits, decode, encode_predictions

LIMITS = BodyLimits()
EXPECTED = {"a": [1.0, 2.0], "b": [0.5, -1.0]}
FORMATS = {
    "dataframe_split": {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 0.5], [2, -1]]}},
    "dataframe_split with index": {"dataframe_split": {
        "index": [7, 8], "columns": ["a", "b"], "data": [[1, 0.5], [2, -1]]}},
    "dataframe_records": {"dataframe_records": [{"a": 1, "b": 0.5}, {"a": 2, "b": -1}]},
    "instances records": {"instances": [{"a": 1, "b": 0.5}, {"a": 2, "b": -1}]},
    "inputs columns": {"inputs": {"a": [1, 2], "b": [0.5, -1]}},
    "inputs with params": {"inputs": {"a": [1, 2], "b": [0.5, -1]}, "params": {"k": 1}},
    "instances rows": {"instances": [[1, 0.5], [2, -1]]},
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_json_format_gives_the_typed_table(name: str) -> None:
    decoded = decode("application/json", json.dumps(FORMATS[name]).encode(), column_entry(),
                     LIMITS)
    assert decoded.table is not None
    assert decoded.table.to_pydict() == EXPECTED
    assert decoded.table.schema.field("a").type == pa.float64()


def test_csv_and_no_content_type() -> None:
    csv = decode("text/csv; charset=utf-8", b"a,b\n1,0.5\n2,-1\n", column_entry(), LIMITS)
    assert csv.table is not None and csv.table.to_pydict() == EXPECTED
    plain = decode(None, json.dumps(FORMATS["inputs columns"]).encode(), column_entry(), LIMITS)
    assert plain.table is not None and plain.table.to_pydict() == EXPECTED


def test_arrow_is_sent_as_it_came() -> None:
    body = table_to_ipc(pa.table(EXPECTED))
    decoded = decode("application/vnd.apache.arrow.stream", body, column_entry(), LIMITS)
    assert decoded.ipc is body and decoded.table is None
    with pytest.raises(TooLarge):
        decode("application/vnd.apache.arrow.stream", body, None, BodyLimits(max_rows=1))


def test_tensor_inputs_in_every_shape_mlflow_takes() -> None:
    entry = tensor_entry()
    rows = [[1, 2, 3], [4, 5, 6]]
    for body in ({"inputs": rows}, {"instances": rows}, {"inputs": {"x": rows}},
                 {"instances": [{"x": r} for r in rows]}):
        decoded = decode("application/json", json.dumps(body).encode(), entry, LIMITS)
        assert decoded.table is not None
        column = decoded.table.column("x")
        assert column.type == pa.list_(pa.float32(), 3)
        assert column.to_pylist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    with pytest.raises(SchemaMismatch, match="'x' has shape"):
        decode("application/json", b'{"inputs": [1, 2, 3]}', entry, LIMITS)


def test_predictions_as_serve_answers_them() -> None:
    body, kind = encode_predictions(pa.table({"y": [2.5, 3.0]}), column_entry(), None)
    assert (json.loads(body), kind) == ({"predictions": [{"y": 2.5}, {"y": 3.0}]},
                                        "application/json")
    tensor = pa.table({"y": pa.array([[1.0, 2.0]], pa.list_(pa.float32(), 2))})
    body, _ = encode_predictions(tensor, tensor_entry(), "application/json")
    assert json.loads(body) == {"predictions": [[1.0, 2.0]]}


@pytest.mark.parametrize("body, error", [
    (b"[1, 2]", BadRequest),
    (b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}', BadRequest),
    (b'{"dataframe_records": {"a": 1}}', BadRequest),
    (b'{"inputs": {"a": [1, 2], "b": [1]}}', BadRequest),
    (b'{"inputs": {"a": ["x"], "b": [1]}}', SchemaMismatch),
])
def test_bad_scoring_bodies(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode("application/json", body, column_entry(), LIMITS)


def test_json_bounds_ignore_brackets_inside_strings() -> None:
    check_json_bounds(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"]]"}', 2, 10)
    with pytest.raises(BadRequest, match="nests 3 levels"):
        check_json_bounds(b'{"a": [[1]]}', 2, 10)
    with pytest.raises(TooLarge):
        check_json_bounds(b"[1, 2, 3, 4]", 5, 3)


def test_oip_json_and_binary_inputs() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    header = json.dumps({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}
                        ).encode()
    decoded = oip_codec.decode_infer(header + x.tobytes(), str(len(header)), tensor_entry(),
                                     LIMITS)
    assert decoded.table.column("x").to_pylist() == x.tolist()
    assert decoded.binary_names == {"y"}
    answer = pa.table({"y": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32(), 2))})
    body, headers = oip_codec.encode_infer(answer, decoded, "tensor", "1")
    size = int(headers[oip_codec.BINARY_HEADER])
    meta = json.loads(body[:size])
    assert meta["outputs"][0] == {"name": "y", "datatype": "FP32", "shape": [2, 2],
                                  "parameters": {"binary_data_size": 16}}
    assert np.frombuffer(body[size:], np.float32).tolist() == [1.0, 2.0, 3.0, 4.0]


def test_oip_strings_in_binary() -> None:
    raw = b"".join(struct.pack("<I", len(s)) + s for s in (b"CCO", b"c1ccccc1"))
    header = json.dumps({"inputs": [{"name": "Molecule", "shape": [2], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    decoded = oip_codec.decode_infer(header + raw, str(len(header)), None, LIMITS)
    assert decoded.table.column("Molecule").to_pylist() == ["CCO", "c1ccccc1"]
    body, headers = oip_codec.encode_infer(
        decoded.table, oip_codec.InferRequest(None, decoded.table, binary_outputs=True), "m", "2")
    size = int(headers[oip_codec.BINARY_HEADER])
    assert body[size:] == raw


@pytest.mark.parametrize("body, header", [
    (b'{"inputs": [{"name": "a", "shape": [3], "datatype": "FP64", "data": [1, 2]}]}', None),
    (b'{"inputs": [{"name": "a", "shape": [-1], "datatype": "FP64", "data": [1]}]}', None),
    (b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64"}]}', None),
    (b'{"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}', None),
    (b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", '
     b'"parameters": {"binary_data_size": 8}}]}abc', "79"),
    (b"{}", "500"),
])
def test_bad_oip_requests(body: bytes, header: str | None) -> None:
    with pytest.raises(BadRequest):
        oip_codec.decode_infer(body, header, None, LIMITS)


def test_mlflow_media_type() -> None:
    assert mlflow_codec.media_type("Text/CSV; charset=utf-8") == "text/csv"
