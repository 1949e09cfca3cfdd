"""A stack for the flavor matrix: discovery, catalog and a worker in-process on the
session's broker, MLflow server and Docker engine; each test logs its own models."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from tests.support.settings import isolated_settings

from modelbus.client import AsyncModelbusClient
from modelbus.wiring import build_catalog, build_discovery, build_worker
from modelbus_contract.settings import ModelbusSettings
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.service import WorkerService
from modelbus_worker.settings import ContainerSettings


@dataclass
class FlavorStack:
    settings: ModelbusSettings
    worker: WorkerService
    pool: ContainerPool
    client: AsyncModelbusClient


@pytest.fixture(scope="session")
async def flavor_stack(
    kafka_bootstrap: str, mlflow_tracking_uri: str, docker_client: Any
) -> AsyncIterator[FlavorStack]:
    settings = isolated_settings(kafka_bootstrap, mlflow_tracking_uri, "flavors")
    discovery, catalog = build_discovery(settings), build_catalog(settings)
    pool = ContainerPool(ContainerSettings(max_containers=12), docker_client, mlflow_tracking_uri)
    worker = build_worker(settings, pool)
    async with contextlib.AsyncExitStack() as running:
        for service in (discovery, catalog, worker):
            await service.start()
            running.push_async_callback(service.stop)
        client = await running.enter_async_context(AsyncModelbusClient(settings=settings))
        yield FlavorStack(settings, worker, pool, client)
