"""Fixtures for the registry side: a logged sample model and the two services in-process."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from mlflow import MlflowClient

from modelbus.wiring import build_catalog, build_discovery
from modelbus_catalog.service import CatalogService
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_discovery.service import DiscoveryService

from .sample_models import LoggedModel, log_sample_model


@pytest.fixture(scope="session")
def sample_model(mlflow_tracking_uri: str) -> LoggedModel:
    return log_sample_model(mlflow_tracking_uri)


@pytest.fixture
def mlflow_client(mlflow_tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_tracking_uri, registry_uri=mlflow_tracking_uri)


@pytest.fixture
def model_name() -> str:
    return f"model-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def registry_services(
    settings: ModelbusSettings,
) -> AsyncIterator[tuple[DiscoveryService, CatalogService]]:
    """Discovery and catalog running against the real broker and MLflow server."""
    discovery = build_discovery(settings)
    catalog = build_catalog(settings)
    async with contextlib.AsyncExitStack() as running:  # every stop runs, whatever fails
        for service in (discovery, catalog):
            await service.start()
            running.push_async_callback(service.stop)
        yield discovery, catalog


@pytest.fixture
async def catalog_view(settings: ModelbusSettings) -> AsyncIterator[CatalogView]:
    view = CatalogView(settings.kafka_bootstrap_servers, settings.topics.catalog)
    await view.start()
    yield view
    await view.stop()


@pytest.fixture
def cleanup_models(mlflow_client: MlflowClient) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(Exception):  # already gone (a test deleted it)
            mlflow_client.delete_registered_model(name)
