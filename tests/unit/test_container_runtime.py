"""Output conversion and the runtime's request handling with a fake model (no Docker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow as pa

from modelbus_worker.runtime.arrow_io import ipc_to_table, prediction_to_table, table_to_ipc
from modelbus_worker.runtime.protocol import Kind, encode_json
from modelbus_worker.runtime.server import ModelServer

MODELS = Path(__file__).parents[1] / "containers" / "models"


def test_outputs_become_tables_with_sensible_names() -> None:
    assert prediction_to_table(np.array([1, 2])).column_names == ["prediction"]
    assert prediction_to_table(np.array([[1], [2]])).column_names == ["prediction"]
    two = prediction_to_table(np.array([[1, 2], [3, 4]]))
    assert two.column_names == ["prediction_0", "prediction_1"]
    assert two.column("prediction_1").to_pylist() == [2, 4]
    assert prediction_to_table(pd.Series([1.0], name="score")).column_names == ["score"]
    assert prediction_to_table(pd.Series([1.0])).column_names == ["prediction"]
    frame = pd.DataFrame({0: [1], "b": [2]}, index=[7])
    assert prediction_to_table(frame).column_names == ["0", "b"]
    assert prediction_to_table([1, 2, 3]).num_rows == 3
    assert prediction_to_table({"a": 1, "b": "x"}).to_pylist() == [{"a": 1, "b": "x"}]
    assert prediction_to_table(3.5).to_pylist() == [{"prediction": 3.5}]
    assert prediction_to_table([[1], [2, 3]]).column("prediction").to_pylist() == [[1], [2, 3]]


def test_ipc_round_trip() -> None:
    table = pa.table({"a": [1, None], "s": ["x", "y"]})
    assert ipc_to_table(table_to_ipc(table)).equals(table)


class FakeModel:
    def predict(self, frame: pd.DataFrame) -> Any:
        if frame["x"].lt(0).any():
            raise ValueError("negative")
        return frame["x"] * 2


def test_server_answers_predict_ping_and_errors() -> None:
    server = ModelServer(FakeModel(), load_s=0.1)
    kind, body = server.answer(Kind.PREDICT, table_to_ipc(pa.table({"x": [1.0, 2.0]})))
    assert kind == Kind.RESULT
    assert ipc_to_table(body).to_pylist() == [{"x": 2.0}, {"x": 4.0}]
    kind, body = server.answer(Kind.PREDICT, table_to_ipc(pa.table({"x": [-1.0]})))
    assert kind == Kind.ERROR
    assert json.loads(body) == {"type": "ValueError", "message": "negative", "stage": "predict"}
    kind, body = server.answer(Kind.PREDICT, b"not arrow")
    assert kind == Kind.ERROR and json.loads(body)["stage"] == "input"
    kind, body = server.answer(Kind.PING, b"")
    assert kind == Kind.PONG and json.loads(body)["load_s"] == 0.1
    assert server.answer(Kind.RESULT, b"")[0] == Kind.ERROR


def test_standby_server_answers_ping_and_refuses_predict_before_load() -> None:
    server = ModelServer()
    kind, body = server.answer(Kind.PING, b"")
    assert kind == Kind.PONG and json.loads(body)["state"] == "standby"
    kind, body = server.answer(Kind.PREDICT, table_to_ipc(pa.table({"x": [1.0]})))
    assert kind == Kind.ERROR
    assert json.loads(body)["type"] == "ModelNotLoaded"


def test_load_of_a_bad_path_is_an_error_of_stage_load(tmp_path: Path) -> None:
    server = ModelServer()
    kind, body = server.answer(Kind.LOAD, encode_json({"model": str(tmp_path / "nothing")}))
    assert kind == Kind.ERROR
    info = json.loads(body)
    assert info["stage"] == "load"
    assert "nothing" in info["message"] and "Traceback" in info["message"]
    assert json.loads(server.answer(Kind.PING, b"")[1])["state"] == "failed"
    # A runtime whose load failed is never handed another model.
    kind, body = server.answer(Kind.LOAD, encode_json({"model": str(tmp_path)}))
    assert kind == Kind.ERROR and "failed" in json.loads(body)["message"]
    kind, body = server.answer(Kind.LOAD, b"{}")
    assert kind == Kind.ERROR and json.loads(body)["stage"] == "load"


def test_load_then_predict_then_no_second_load(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(str(model_dir), python_model=str(MODELS / "scale_model.py"))
    server = ModelServer()
    kind, body = server.answer(Kind.LOAD, encode_json({"model": str(model_dir)}))
    assert kind == Kind.LOADED, body
    assert json.loads(body)["load_s"] >= 0
    pong = json.loads(server.answer(Kind.PING, b"")[1])
    assert pong["state"] == "ready" and pong["model"] == str(model_dir)
    kind, body = server.answer(Kind.PREDICT, table_to_ipc(pa.table({"x": [1.5], "label": ["a"]})))
    assert kind == Kind.RESULT
    assert ipc_to_table(body).to_pylist() == [{"y": 3.0, "label_upper": "A"}]
    kind, body = server.answer(Kind.LOAD, encode_json({"model": str(model_dir)}))
    assert kind == Kind.ERROR and "ready" in json.loads(body)["message"]
