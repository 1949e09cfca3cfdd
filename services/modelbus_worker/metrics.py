"""The worker's Prometheus metrics, in its own registry, with bounded label values.

``model`` and ``version`` label a series only for names the catalog knows: any other name a
request carries is counted as ``_unknown``, so that no sender can create series at will.
The per-request series carry the request's ``lane`` too (``interactive`` or ``bulk``: the
lane the delivery runtime read it from).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelbus_contract.catalog_index import entries_named
from modelbus_contract.messages import CatalogEntry
from modelbus_delivery.consumer_metrics import ConsumerMetrics, DeadLetterCounter
from modelbus_delivery.lane_policy import CURRENT_LANE

UNKNOWN = "_unknown"
CONTAINER_STATES = ("warm", "starting", "standby")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
COLD_START_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536, 262144,
               1048576)


def model_labels(
    entries: Mapping[str, CatalogEntry], model: str, version: str
) -> tuple[str, str]:
    """``(model, version)`` as labels: ``_unknown`` for a name the catalog does not know,
    and for a version it does not list under that name (``""``: none was resolved)."""
    if version and f"{model}/{version}" in entries:
        return model, version
    if not entries_named(entries, model):
        return UNKNOWN, UNKNOWN if version else ""
    return model, UNKNOWN if version else ""


class WorkerMetrics:
    """Everything the worker measures; a fresh registry unless one is given."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry or CollectorRegistry()
        per_model = ["model", "version"]
        per_request = [*per_model, "lane"]
        self.requests = Counter(
            "modelbus_requests", "Requests answered, by outcome.",
            [*per_request, "status", "error_code"], registry=registry,
        )
        self.duration = Histogram(
            "modelbus_request_duration_seconds",
            "From the worker taking a request to its answer being ready.",
            per_request, buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.queue = Histogram(
            "modelbus_request_queue_duration_seconds",
            "From the request's record timestamp to the worker taking it (time on the topic).",
            per_request, buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.predict = Histogram(
            "modelbus_request_predict_duration_seconds",
            "The model's part of a request: waiting for its batch, then the container's predict.",
            per_request, buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.batch_rows = Histogram(
            "modelbus_batch_rows", "Rows of each predict sent to a model container.",
            per_model, buckets=ROW_BUCKETS, registry=registry,
        )
        self.containers = Gauge(
            "modelbus_containers", "Model containers by state.", ["state"], registry=registry
        )
        for state in CONTAINER_STATES:
            self.containers.labels(state).set(0)
        self.container_starts = Counter(
            "modelbus_container_starts", "Cold starts of a model version's container.",
            [*per_model, "result"], registry=registry,
        )
        self.cold_start = Histogram(
            "modelbus_cold_start_seconds",
            "Cold starts that succeeded: image, container and model load.",
            per_model, buckets=COLD_START_BUCKETS, registry=registry,
        )
        self.preparations = Counter(
            "modelbus_preparations", "Background preparations of a model version (files, "
            "images, a container) before any request, by outcome (prepared, failed).",
            ["outcome"], registry=registry,
        )
        self.preparation_seconds = Histogram(
            "modelbus_preparation_seconds", "How long background preparations took.",
            ["outcome"], buckets=COLD_START_BUCKETS, registry=registry,
        )
        self.consumer = ConsumerMetrics(registry)
        self.dead_letters = DeadLetterCounter(registry)
        # The labelled series of each request metric, looked up once per label set: the
        # label values are bounded, and so are these maps.
        self._series: dict[tuple[Any, ...], Any] = {}

    def _labelled(self, metric: Any, *labels: str) -> Any:
        series = self._series.get((metric, *labels))
        if series is None:
            series = self._series[metric, *labels] = metric.labels(*labels)
        return series

    def answered(
        self, model: str, version: str, status: str, error_code: str,
        seconds: float, queued_s: float | None, lane: str = "interactive",
    ) -> None:
        """One answer (labels already bounded)."""
        self._labelled(self.requests, model, version, lane, status, error_code).inc()
        self._labelled(self.duration, model, version, lane).observe(seconds)
        if queued_s is not None:
            self._labelled(self.queue, model, version, lane).observe(queued_s)

    def request_predicted(self, model: str, version: str, rows: int, seconds: float) -> None:
        """One request's predict (called in the request's task: its lane is the current one)."""
        self._labelled(self.predict, model, version, CURRENT_LANE.get()).observe(seconds)

    def batch_predicted(self, model: str, version: str, rows: int, seconds: float) -> None:
        self._labelled(self.batch_rows, model, version).observe(rows)

    def container_started(self, model: str, version: str, ok: bool, seconds: float) -> None:
        self.container_starts.labels(model, version, "ok" if ok else "error").inc()
        if ok:
            self.cold_start.labels(model, version).observe(seconds)

    def prepared(self, outcome: str, seconds: float) -> None:
        """One background preparation ended (``prepared`` or ``failed``)."""
        self.preparations.labels(outcome).inc()
        self.preparation_seconds.labels(outcome).observe(seconds)

    def set_containers(self, counts: Mapping[str, int]) -> None:
        for state in CONTAINER_STATES:
            self.containers.labels(state).set(counts.get(state, 0))


PredictObserver = Callable[[str, str, int, float], None]
