"""The gateway's Prometheus metrics, in its own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                   60)


class GatewayMetrics:
    """Requests answered by protocol and HTTP status, their duration, requests in flight and
    those refused at the door (by reason)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry or CollectorRegistry()
        self.requests = Counter(
            "modelbus_gateway_requests", "HTTP requests answered, by protocol and status.",
            ["protocol", "status"], registry=registry,
        )
        self.seconds = Histogram(
            "modelbus_gateway_request_seconds", "Time from a request's arrival to its answer.",
            ["protocol"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.in_flight = Gauge(
            "modelbus_gateway_in_flight", "Requests being handled now.", registry=registry
        )
        self.refused = Counter(
            "modelbus_gateway_refused", "Requests refused before they reached Kafka, by reason "
            "(unauthorized, overloaded, too_large).", ["reason"], registry=registry,
        )
