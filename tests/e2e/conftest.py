"""The whole product in one session: real broker, MLflow server, Docker engine and models.

Discovery, catalog and a worker run in-process on a session topic prefix; the demo models
and a misbehaving test model are registered once and warmed before the tests run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from tests.support.images import remove_model_images
from tests.support.settings import answered_on_results_topic, isolated_settings
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus.demo.models import DemoModel, _versions
from modelbus.demo.run import register_demo_models
from modelbus.wiring import build_catalog, build_discovery, build_worker
from modelbus_contract.settings import ModelbusSettings
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.service import WorkerService
from modelbus_worker.settings import ContainerSettings

TRICKY_MODEL = "test-tricky"
# First use on a fresh machine builds the dependency-set images: minutes, once.
WARM_UP_TIMEOUT_S = 1800.0


@dataclass
class InferenceStack:
    settings: ModelbusSettings
    worker: WorkerService
    pool: ContainerPool
    demo: list[DemoModel]
    tricky: DemoModel
    more_models: list[str] = field(default_factory=list)  # registered by tests: cleaned up


def register_tricky_model(tracking_uri: str) -> DemoModel:
    """Same requirements as the demo molecule model, so it shares its dependency image."""
    mlflow.set_tracking_uri(tracking_uri)
    sample = pd.DataFrame({"Molecule": ["CCO"]})
    with mlflow.start_run(run_name="tricky"):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).parent / "models" / "tricky_model.py"),
            signature=infer_signature(sample, pd.DataFrame({"Predicted": ["3"]})),
            pip_requirements=[_versions("rdkit"), _versions("pandas"), _versions("mlflow")],
        )
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(TRICKY_MODEL, tags={"datagrok": ""})
    mv = client.create_model_version(
        TRICKY_MODEL, info.model_uri, run_id=info.run_id, model_id=info.model_id
    )
    client.set_registered_model_alias(TRICKY_MODEL, "stable", mv.version)
    return DemoModel(TRICKY_MODEL, str(mv.version), sample)


def stack_settings(kafka_bootstrap: str, mlflow_tracking_uri: str) -> ModelbusSettings:
    # The tests read the answers of their clients on the results topic.
    return answered_on_results_topic(isolated_settings(kafka_bootstrap, mlflow_tracking_uri, "e2e"))


@pytest.fixture(scope="session")
def registered_models(mlflow_tracking_uri: str) -> tuple[list[DemoModel], DemoModel]:
    previous = mlflow.get_tracking_uri()
    try:
        return register_demo_models(mlflow_tracking_uri), register_tricky_model(
            mlflow_tracking_uri
        )
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
async def inference_stack(
    kafka_bootstrap: str,
    mlflow_tracking_uri: str,
    registered_models: tuple[list[DemoModel], DemoModel],
    docker_client: Any,
) -> AsyncIterator[InferenceStack]:
    settings = stack_settings(kafka_bootstrap, mlflow_tracking_uri)
    demo, tricky = registered_models
    discovery, catalog = build_discovery(settings), build_catalog(settings)
    # Room for every version the tests register, so none evicts another's warm container.
    pool = ContainerPool(ContainerSettings(max_containers=8), docker_client, mlflow_tracking_uri)
    worker = build_worker(settings, pool)
    stack = InferenceStack(settings, worker, pool, demo, tricky)
    async with contextlib.AsyncExitStack() as running:
        # Every stop runs, in reverse order, even when a start or another stop fails.
        running.callback(
            lambda: remove_model_images(
                docker_client, [*(m.name for m in (*demo, tricky)), *stack.more_models]
            )
        )
        for service in (discovery, catalog, worker):
            await service.start()
            running.push_async_callback(service.stop)
        models = [*demo, tricky]
        await async_wait_for(
            lambda: all(f"{m.name}/{m.version}" in worker.catalog.entries for m in models),
            60, message="all test models in the worker's catalog view",
        )
        for model in models:
            await asyncio.wait_for(pool.warm(model.name, model.version), WARM_UP_TIMEOUT_S)
        yield stack


@pytest.fixture(scope="session")
async def client(inference_stack: InferenceStack) -> AsyncIterator[AsyncModelbusClient]:
    async with AsyncModelbusClient(settings=inference_stack.settings) as c:
        yield c
