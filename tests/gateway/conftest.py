"""One stack for the gateway's integration tests: the real broker, MLflow, Docker engine,
discovery, catalog and a worker in-process, the gateway serving HTTP on a free port, and
``mlflow models serve`` of the same column model to compare with.

Three models share the demo molecule model's requirements (one dependency image): a column
model (``y = 2a + b``), a model that misbehaves on request (raises, sleeps) and a model with
two tensor inputs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from tests.support.images import remove_model_images
from tests.support.mlflow_serve import MlflowServe
from tests.support.settings import isolated_settings
from tests.support.waiting import async_wait_for

from modelbus.demo.models import _versions
from modelbus.wiring import build_catalog, build_discovery, build_gateway, build_worker
from modelbus_contract.settings import ModelbusSettings
from modelbus_gateway.service import GatewayService
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.settings import ContainerSettings

HERE = Path(__file__).parent
E2E_MODELS = HERE.parent / "e2e" / "models"
LINEAR, TRICKY, TENSOR = "gw-linear", "gw-tricky", "gw-tensor"
REQUIREMENTS = [_versions("rdkit"), _versions("pandas"), _versions("mlflow")]
# First use on a fresh machine builds the dependency-set image: minutes, once.
WARM_UP_TIMEOUT_S = 1800.0
# Requests a gateway of these tests holds in flight before it answers 429.
MAX_IN_FLIGHT = 8


@dataclass
class GatewayStack:
    settings: ModelbusSettings
    gateway: GatewayService
    pool: ContainerPool
    versions: dict[str, str]

    @property
    def url(self) -> str:
        return self.gateway.url


def _register(client: MlflowClient, name: str, code: Path, signature: Any) -> str:
    with mlflow.start_run(run_name=name):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code),
                                       signature=signature, pip_requirements=REQUIREMENTS)
    client.create_registered_model(name, tags={"datagrok": ""})
    version = client.create_model_version(name, info.model_uri, run_id=info.run_id,
                                          model_id=info.model_id).version
    client.set_registered_model_alias(name, "stable", version)
    return str(version)


@pytest.fixture(scope="session")
def gateway_models(mlflow_tracking_uri: str) -> dict[str, str]:
    """The three models, registered once: name → version."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    client = MlflowClient(tracking_uri=mlflow_tracking_uri, registry_uri=mlflow_tracking_uri)
    try:
        ab = pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, -1.0]})
        a = np.zeros((2, 3), np.float64)
        b = np.zeros((2, 2, 2), np.float32)
        return {
            LINEAR: _register(client, LINEAR, HERE / "models" / "linear_model.py",
                              infer_signature(ab, pd.DataFrame({"y": [2.5, 3.0]}))),
            TRICKY: _register(client, TRICKY, E2E_MODELS / "tricky_model.py",
                              infer_signature(pd.DataFrame({"Molecule": ["CCO"]}),
                                              pd.DataFrame({"Predicted": ["3"]}))),
            TENSOR: _register(client, TENSOR, E2E_MODELS / "tensor_model.py",
                              infer_signature({"a": a, "b": b}, np.zeros((2, 2, 3)))),
        }
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
async def gateway_stack(
    kafka_bootstrap: str, mlflow_tracking_uri: str, gateway_models: dict[str, str],
    docker_client: Any,
) -> AsyncIterator[GatewayStack]:
    settings = isolated_settings(kafka_bootstrap, mlflow_tracking_uri, "gateway").model_copy(
        update={"gateway_port": 0, "gateway_max_in_flight": MAX_IN_FLIGHT,
                "gateway_max_body_bytes": 8 * 1024 * 1024})
    pool = ContainerPool(ContainerSettings(max_containers=6), docker_client,
                         mlflow_tracking_uri)
    worker = build_worker(settings, pool)
    gateway = build_gateway(settings)
    async with contextlib.AsyncExitStack() as running:
        running.callback(lambda: remove_model_images(docker_client, list(gateway_models)))
        for service in (build_discovery(settings), build_catalog(settings), worker, gateway):
            await service.start()
            running.push_async_callback(service.stop)
        await async_wait_for(
            lambda: all(f"{m}/{v}" in gateway.view.entries for m, v in gateway_models.items()),
            60, message="the test models in the gateway's catalog view",
        )
        for model, version in gateway_models.items():
            await asyncio.wait_for(pool.warm(model, version), WARM_UP_TIMEOUT_S)
        yield GatewayStack(settings, gateway, pool, gateway_models)


@pytest.fixture(scope="session")
def linear_serve(
    mlflow_tracking_uri: str, gateway_models: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MlflowServe]:
    """``mlflow models serve`` of the column model, as a user would run it."""
    serve = MlflowServe(f"models:/{LINEAR}/{gateway_models[LINEAR]}", mlflow_tracking_uri,
                        tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        serve.start()
        yield serve
    finally:
        serve.stop()
