"""The embedded MLflow server: answers, and keeps its data across a restart."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from mlflow import MlflowClient

from modelbus.stack import EmbeddedMlflow, free_tcp_port, mlflow_healthy, pid_alive
from modelbus.stack.process import descendant_pids


def test_the_server_answers(mlflow_tracking_uri: str) -> None:
    assert mlflow_healthy(mlflow_tracking_uri)
    client = MlflowClient(tracking_uri=mlflow_tracking_uri, registry_uri=mlflow_tracking_uri)
    name = f"test-{uuid.uuid4().hex[:12]}"
    experiment_id = client.create_experiment(name)
    assert client.get_experiment(experiment_id).name == name


def test_a_restart_on_the_same_port_keeps_the_registry(
    mlflow_server_factory: Callable[[Path, int], EmbeddedMlflow], tmp_path: Path
) -> None:
    server = mlflow_server_factory(tmp_path / "mlflow", free_tcp_port())
    uri = server.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = f"test-{uuid.uuid4().hex[:12]}"
    client.create_registered_model(name, tags={"datagrok": ""})
    assert server.process is not None and server.process.pid is not None
    pids = [server.process.pid, *descendant_pids(server.process.pid)]

    server.stop()
    assert not mlflow_healthy(uri)
    assert [pid for pid in pids if pid_alive(pid)] == []

    server.start()
    assert server.tracking_uri == uri
    assert client.get_registered_model(name).tags == {"datagrok": ""}
