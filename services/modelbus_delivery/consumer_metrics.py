"""Metrics of a consumer-group member: records in flight, the lag of each partition and the
dead letters it published."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelbus_contract.errors import ERRORS_BY_CODE, BadRequest, InternalError

from .records import Outgoing
from .runtime import DeliveryRuntime

OTHER_CODE = "other"


class _LagCollector(Collector):
    """``modelbus_consumer_lag{topic,partition,lane}`` as last sampled: only assigned
    partitions appear, so a partition that went to another member leaves no stale series."""

    def __init__(self) -> None:
        self.lag: dict[tuple[str, int], int] = {}
        self.lane_of: Callable[[str], str] = lambda topic: "interactive"

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "modelbus_consumer_lag",
            "Records of an assigned partition not yet committed (end offset as of the last "
            "fetch minus the commit position).",
            labels=["topic", "partition", "lane"],
        )
        for (topic, partition), lag in sorted(self.lag.items()):
            family.add_metric([topic, str(partition), self.lane_of(topic)], lag)
        yield family


class _PollCollector(Collector):
    """``modelbus_consumer_last_poll_timestamp_seconds``: when the consumer's fetch loop last
    fetched (with or without records; a member at its in-flight bound still polls), absent
    until it first did: a member whose loop stopped is seen by how old this gets."""

    def __init__(self) -> None:
        self.at: float | None = None

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "modelbus_consumer_last_poll_timestamp_seconds",
            "Unix time of the consumer's last successful fetch from the broker.",
        )
        if self.at is not None:
            family.add_metric([], self.at)
        yield family


class ConsumerMetrics:
    """Sampled from the runtime when scraped (on the event loop), never per record."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.in_flight = Gauge(
            "modelbus_in_flight_requests", "Records being handled now, by lane (a consumer "
            "without a bulk lane counts every record as interactive).", ["lane"],
            registry=registry,
        )
        self._lag = _LagCollector()
        registry.register(self._lag)
        self._poll = _PollCollector()
        registry.register(self._poll)

    async def sample(self, runtime: DeliveryRuntime) -> None:
        self.in_flight.labels("interactive").set(runtime.in_flight - runtime.bulk_in_flight)
        self.in_flight.labels("bulk").set(runtime.bulk_in_flight)
        self._poll.at = runtime.last_poll
        self._lag.lane_of = runtime.lane_of
        lag = await runtime.partition_lag()
        self._lag.lag = {(tp.topic, tp.partition): n for tp, n in lag.items()}


class DeadLetterCounter:
    """``modelbus_dlq_records_total{error_code}``: records the broker acknowledged on the DLQ
    topic, by their ``dlq_error_code`` (a documented error code, else ``other``: bounded)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "modelbus_dlq_records", "Records published to the DLQ topic, by dlq_error_code.",
            ["error_code"], registry=registry,
        )
        for code in (BadRequest.code, InternalError.code):  # the codes DLQ copies carry
            self.records.labels(code)

    def observer(self, dlq_topic: str) -> Callable[[Outgoing], None]:
        """What a ``DeliveryRuntime`` calls with each record it published (``published``)."""

        def published(out: Outgoing) -> None:
            if out.topic == dlq_topic:
                code = out.headers.get("dlq_error_code", "")
                self.records.labels(code if code in ERRORS_BY_CODE else OTHER_CODE).inc()

        return published
