"""The catalog service's Prometheus metrics, in its own registry."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge

from modelbus_contract.messages import CatalogEntry
from modelbus_delivery.consumer_metrics import DeadLetterCounter

ENTRY_STATUSES = ("ready", "invalid")


class CatalogMetrics:
    """The entries of the catalog topic by status, and the dead letters published."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry or CollectorRegistry()
        self.entries = Gauge(
            "modelbus_catalog_entries", "Entries of the catalog topic by status.", ["status"],
            registry=registry,
        )
        for status in ENTRY_STATUSES:
            self.entries.labels(status).set(0)
        self.dead_letters = DeadLetterCounter(registry)

    def set_entries(self, entries: Iterable[CatalogEntry]) -> None:
        counts = dict.fromkeys(ENTRY_STATUSES, 0)
        for entry in entries:
            counts[entry.status] = counts.get(entry.status, 0) + 1
        for status, count in counts.items():
            self.entries.labels(status).set(count)
