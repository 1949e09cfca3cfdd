"""Metrics of a consumer-group member: records in flight and the lag of each partition."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .runtime import DeliveryRuntime


class _LagCollector(Collector):
    """``modelbus_consumer_lag{topic,partition}`` as last sampled: only assigned partitions
    appear, so a partition that went to another member leaves no stale series."""

    def __init__(self) -> None:
        self.lag: dict[tuple[str, int], int] = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "modelbus_consumer_lag",
            "Records of an assigned partition not yet committed (end offset as of the last "
            "fetch minus the commit position).",
            labels=["topic", "partition"],
        )
        for (topic, partition), lag in sorted(self.lag.items()):
            family.add_metric([topic, str(partition)], lag)
        yield family


class ConsumerMetrics:
    """Sampled from the runtime when scraped (on the event loop), never per record."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.in_flight = Gauge(
            "modelbus_in_flight_requests", "Records being handled now.", registry=registry
        )
        self._lag = _LagCollector()
        registry.register(self._lag)

    async def sample(self, runtime: DeliveryRuntime) -> None:
        self.in_flight.set(runtime.in_flight)
        lag = await runtime.partition_lag()
        self._lag.lag = {(tp.topic, tp.partition): n for tp, n in lag.items()}
