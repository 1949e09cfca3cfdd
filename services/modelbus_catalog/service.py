"""The catalog service: discovery events in, catalog entries (or tombstones) out.

The decisions are the handler's (``handler.py``), the registry reads with their retries
the reader's (``retrying_reader.py``); the service runs them on Kafka through the shared
life cycle and keeps the entries-by-status gauge.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.logs import get_logger
from modelbus_delivery.ops_http import Check
from modelbus_delivery.records import Inbound, Outgoing
from modelbus_delivery.runtime import DeliveryRuntime, RuntimeConfig
from modelbus_delivery.service_lifecycle import ServiceLifecycle, serve_until

from .handler import CatalogHandler
from .metrics import CatalogMetrics
from .retrying_reader import RetryingReader

log = get_logger("catalog")


def consumer_config(settings: ModelbusSettings) -> RuntimeConfig:
    """The catalog's consumer: one version's events in order, a few versions at a time."""
    return RuntimeConfig(
        name="catalog",
        topics=(settings.topics.discovered,),
        group_id=f"{settings.topic_prefix}catalog",
        max_in_flight=8,
        ordered_by_key=True,
        fetch_max_wait_ms=max(settings.kafka_fetch_max_wait_ms, 100),
    )


class CatalogService:
    """Keeps the compacted catalog topic in line with the discovered topic.

    Events of one version are handled in order (a removal never overtakes the entry it
    removes); a discovery event's offset is committed only once its entry is published.
    Every collaborator is given (``modelbus.wiring.build_catalog`` builds them): the
    ``runtime`` runs ``handler`` over the discovered topic, ``view`` is the catalog topic as
    it is (every partition).
    """

    def __init__(
        self, lifecycle: ServiceLifecycle, handler: CatalogHandler, reader: RetryingReader,
        view: CatalogView, runtime: DeliveryRuntime, metrics: CatalogMetrics,
    ) -> None:
        self.lifecycle = lifecycle
        self.handler = handler
        self._reader = reader
        self.view = view
        self.runtime = runtime
        self.metrics = metrics

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    @property
    def last_read_ok(self) -> bool | None:
        """Whether the last MLflow read reached MLflow (None: none yet)."""
        return self._reader.last_read_ok

    def readiness_checks(self) -> dict[str, Check]:
        return {
            "kafka": self.lifecycle.kafka_ready,
            "mlflow": lambda: self.last_read_ok is not False,
        }

    async def refresh_metrics(self) -> None:
        self.metrics.set_entries(self.view.entries.values())

    async def handle_record(self, record: Inbound) -> list[Outgoing]:
        """One record of the discovered topic → the entry (or tombstone) to publish."""
        return await self.handler.handle_record(record)

    async def start(self) -> None:
        await self.lifecycle.start()
        log.info("catalog_started", topic=self.handler.topic, entries=len(self.view.entries))

    async def stop(self) -> None:
        await self.lifecycle.stop()
        log.info("catalog_stopped", handled=self.runtime.handled,
                 quarantined=self.runtime.quarantined)

    async def run_forever(self) -> None:
        await serve_until(self, self.runtime.wait)
