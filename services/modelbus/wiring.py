"""The one place that wires adapters (MLflow, Kafka, Docker) into the services."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.ops_http import OpsSource, ops_endpoint

if TYPE_CHECKING:
    from modelbus_catalog.service import CatalogService
    from modelbus_discovery.service import DiscoveryService
    from modelbus_worker.service import WorkerService


def configure_mlflow_client(settings: ModelbusSettings) -> None:
    """Every MLflow call of this process fails fast instead of retrying for minutes.

    The services retry with their own backoff and report each failure; MLflow's built-in
    retries would hide an outage behind silent waiting. Explicit variables are kept.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    # MLflow's own handlers would print plain, unredacted lines beside the JSON logs.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.mlflow_timeout_s)))


def build_discovery(settings: ModelbusSettings) -> DiscoveryService:
    configure_mlflow_client(settings)
    from modelbus_discovery.registry import MlflowRegistry
    from modelbus_discovery.service import DiscoveryService

    registry = MlflowRegistry(
        settings.mlflow_tracking_uri, settings.datagrok_tag, settings.registry_page_size
    )
    return DiscoveryService(settings, registry)


def build_catalog(settings: ModelbusSettings) -> CatalogService:
    configure_mlflow_client(settings)
    from modelbus_catalog.reader import MlflowModelReader
    from modelbus_catalog.service import CatalogService

    return CatalogService(settings, MlflowModelReader(settings.mlflow_tracking_uri))


def build_worker(settings: ModelbusSettings) -> WorkerService:
    configure_mlflow_client(settings)
    from modelbus_worker.metrics import WorkerMetrics
    from modelbus_worker.pool.pool import ContainerPool
    from modelbus_worker.service import WorkerService

    metrics = WorkerMetrics()
    pool = ContainerPool(tracking_uri=settings.mlflow_tracking_uri)
    return WorkerService(
        settings, pool, max_timeout_s=pool.settings.request_timeout_s, metrics=metrics,
        containers=pool,
    )


class RunnableService(OpsSource, Protocol):
    async def run_forever(self) -> None: ...


async def run_with_metrics(
    name: str, service: RunnableService, settings: ModelbusSettings
) -> None:
    """Run ``service`` with its metrics endpoint on ``settings.metrics_port`` (0: none)."""
    async with ops_endpoint(service, settings.metrics_host, settings.metrics_port, name):
        await service.run_forever()
