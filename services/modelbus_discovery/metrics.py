"""Discovery's Prometheus metrics, in its own registry."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelbus_contract.messages import DiscoveryEvent

SCAN_RESULTS = ("ok", "registry_error", "publish_error")
LOOK_RESULTS = ("ok", "registry_error")
MODEL_SCAN_TRIGGERS = ("webhook", "recent")
SCAN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DiscoveryMetrics:
    """Registry scans by result, their duration, the fast path's looks at the recently
    updated models, the listings of one model by what asked for them, and the versions
    announced."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry or CollectorRegistry()
        self.scans = Counter(
            "modelbus_registry_scans",
            "Registry scans: ok, registry_error (the listing failed) or publish_error "
            "(Kafka refused what changed; the next scan sends it).",
            ["result"], registry=registry,
        )
        for result in SCAN_RESULTS:
            self.scans.labels(result)
        self.scan_seconds = Histogram(
            "modelbus_registry_scan_seconds", "Time to list the registry's tagged versions.",
            buckets=SCAN_BUCKETS, registry=registry,
        )
        self.recent_looks = Counter(
            "modelbus_registry_recent_queries",
            "Looks at the most recently updated registered models (the fast path between "
            "scans): ok or registry_error.",
            ["result"], registry=registry,
        )
        for result in LOOK_RESULTS:
            self.recent_looks.labels(result)
        self.model_scans = Counter(
            "modelbus_registry_model_scans",
            "Listings of one registered model between scans, by what asked for them: a "
            "webhook, or a change the fast path saw among the recently updated models.",
            ["trigger"], registry=registry,
        )
        for trigger in MODEL_SCAN_TRIGGERS:
            self.model_scans.labels(trigger)
        self.discovered = Gauge(
            "modelbus_models_discovered",
            "Model versions announced on the discovered topic and not removed.",
            registry=registry,
        )

    def scanned(self, result: str, seconds: float | None = None) -> None:
        self.scans.labels(result).inc()
        if seconds is not None:
            self.scan_seconds.observe(seconds)

    def looked(self, result: str) -> None:
        self.recent_looks.labels(result).inc()

    def model_scanned(self, trigger: str) -> None:
        self.model_scans.labels(trigger).inc()

    def set_known(self, known: Iterable[DiscoveryEvent]) -> None:
        self.discovered.set(sum(1 for event in known if event.kind != "removed"))
