"""The one place that wires adapters (MLflow, Kafka, Docker) into the services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .settings import ModelbusSettings

if TYPE_CHECKING:
    from modelbus_catalog.service import CatalogService
    from modelbus_discovery.service import DiscoveryService
    from modelbus_worker.service import WorkerService


def build_discovery(settings: ModelbusSettings) -> DiscoveryService:
    from modelbus_discovery.registry import MlflowRegistry
    from modelbus_discovery.service import DiscoveryService

    registry = MlflowRegistry(
        settings.mlflow_tracking_uri, settings.datagrok_tag, settings.registry_page_size
    )
    return DiscoveryService(settings, registry)


def build_catalog(settings: ModelbusSettings) -> CatalogService:
    from modelbus_catalog.reader import MlflowModelReader
    from modelbus_catalog.service import CatalogService

    return CatalogService(settings, MlflowModelReader(settings.mlflow_tracking_uri))


def build_worker(settings: ModelbusSettings) -> WorkerService:
    from modelbus_worker.pool.pool import ContainerPool
    from modelbus_worker.service import WorkerService

    pool = ContainerPool(tracking_uri=settings.mlflow_tracking_uri)
    return WorkerService(settings, pool)
