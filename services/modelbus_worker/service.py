"""The worker service: a consumer-group member answering every request it is given.

It runs on the shared delivery runtime: requests are handled concurrently (up to
``worker_max_in_flight``), so a model whose container is still starting never stalls a
warm one, and a request's offset is committed only once its answer is published.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry

from modelbus_contract.errors import ModelbusError
from modelbus_contract.messages import CatalogEntry
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.closing import close_quietly
from modelbus_delivery.logs import get_logger
from modelbus_delivery.ops_http import Check
from modelbus_delivery.records import Outgoing
from modelbus_delivery.runtime import DeliveryRuntime, RuntimeConfig
from modelbus_delivery.service_lifecycle import ServiceLifecycle, serve_until
from modelbus_delivery.watermarks import OffsetTracker
from modelbus_delivery.writer import TopicWriter

from .metrics import WorkerMetrics
from .ports import Containers, Predictor, StartListener
from .preparation.plan import Ownership
from .preparation.preparer import OwnershipSource, Preparer
from .progress_notices import Publish

log = get_logger("worker")


def never(name: str, version: str) -> bool:
    """No version is ever starting (a worker without containers)."""
    return False


def consumer_config(settings: ModelbusSettings) -> RuntimeConfig:
    """The worker's consumer: its group, both request lanes, concurrency and fetch pacing."""
    topics = settings.topics
    return RuntimeConfig(
        name="worker",
        topics=(topics.requests, topics.requests_bulk),
        group_id=f"{settings.topic_prefix}worker",
        max_in_flight=settings.worker_max_in_flight,
        bulk_topics=(topics.requests_bulk,),
        bulk_share=settings.worker_bulk_share,
        bulk_min_share=settings.worker_bulk_min_share,
        lane_hold_s=settings.worker_lane_hold_ms / 1000,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        fetch_max_wait_busy_ms=settings.kafka_fetch_max_wait_busy_ms,
        fetch_busy_rate=settings.kafka_fetch_busy_rate,
        max_partition_fetch_bytes=max(settings.max_message_bytes, 1_048_576),
        fetch_max_bytes=max(4 * settings.max_message_bytes, 52_428_800),
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_session_timeout_ms // 3,
    )


def publisher(writer: TopicWriter) -> Publish:
    """Publishes one outgoing record through ``writer``."""
    async def publish(out: Outgoing) -> None:
        await writer.send(out.topic, out.key, out.value, out.headers)
    return publish


def batchable(entries: Mapping[str, CatalogEntry]) -> Callable[[str, str], bool]:
    """Whether a version's requests may be batched (unknown versions: yes)."""
    def allowed(name: str, version: str) -> bool:
        entry = entries.get(f"{name}/{version}")
        return entry is None or entry.batching
    return allowed


def counted_starts(metrics: WorkerMetrics) -> StartListener:
    """A start listener counting container starts and their cold-start seconds."""
    def started(name: str, version: str, error: ModelbusError | None, seconds: float) -> None:
        metrics.container_started(name, version, error is None, seconds)
    return started


def ownership(runtime: DeliveryRuntime, topic: str) -> OwnershipSource:
    """The partitions of ``topic`` the runtime holds (None until the group assigned some)."""
    def held() -> Ownership | None:
        count = runtime.partition_count(topic)
        if count is None:
            return None
        return Ownership(
            frozenset(tp.partition for tp in runtime.assigned() if tp.topic == topic), count
        )
    return held


class WorkerService:
    """Consumes the requests topic and publishes results, error results and DLQ copies.

    Every collaborator is given (``modelbus.wiring.build_worker`` builds them and the
    handler's wrapper stack); the shared ``lifecycle`` starts, guards and stops the Kafka
    parts, and the service adds its own: the preparer, and the containers closed last.
    """

    def __init__(
        self, lifecycle: ServiceLifecycle, catalog: CatalogView, runtime: DeliveryRuntime,
        predictor: Predictor, metrics: WorkerMetrics, *,
        containers: Containers | None = None, preparer: Preparer | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.catalog = catalog
        self.runtime = runtime
        self._predictor = predictor
        self.metrics = metrics
        self._containers = containers
        self.preparer = preparer

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def readiness_checks(self) -> dict[str, Check]:
        checks: dict[str, Check] = {"kafka": self.lifecycle.kafka_ready}
        if self._containers is not None:
            checks["docker"] = self._containers.engine_reachable
        return checks

    async def refresh_metrics(self) -> None:
        """Sample what is not counted as it happens (on the event loop)."""
        await self.metrics.consumer.sample(self.runtime)
        if self._containers is not None:
            self.metrics.set_containers(self._containers.container_counts())

    @property
    def predictor(self) -> Predictor:
        return self._predictor

    @property
    def tracker(self) -> OffsetTracker:
        return self.runtime.tracker

    @property
    def answered(self) -> int:
        return self.runtime.handled

    async def start(self) -> None:
        await self.lifecycle.start()
        if self.preparer is not None:
            await self.preparer.start(self.catalog.changes())
        log.info("worker_started", topics=list(self.runtime.config.topics),
                 catalog=len(self.catalog.entries))

    async def stop(self, drain_timeout_s: float | None = None) -> None:
        """Stop fetching, let requests in flight finish (for at most ``drain_timeout_s``,
        default the runtime's) and commit, then disconnect and close the containers."""
        if self.preparer is not None:
            await self.preparer.stop()
        await self.lifecycle.stop(drain_timeout_s)
        await close_quietly("container pool", self._predictor.close, timeout_s=60)
        log.info("worker_stopped", answered=self.runtime.handled,
                 quarantined=self.runtime.quarantined)

    async def run_forever(self) -> None:
        await serve_until(self, self.runtime.wait)
