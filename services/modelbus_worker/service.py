"""The worker service: a consumer-group member answering every request it is given.

It runs on the shared delivery runtime: requests are handled concurrently (up to
``worker_max_in_flight``), so a model whose container is still starting never stalls a
warm one, and a request's offset is committed only once its answer is published.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from modelbus_contract.channels import topic_specs
from modelbus_contract.errors import ModelbusError
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.closing import close_quietly
from modelbus_delivery.kafka_config import connection_options
from modelbus_delivery.logs import get_logger
from modelbus_delivery.ops_http import Check, kafka_ready
from modelbus_delivery.records import Outgoing
from modelbus_delivery.retry import backoff_for
from modelbus_delivery.runtime import DeliveryRuntime, RuntimeConfig
from modelbus_delivery.topics import TopicGuard, ensure_topics, retry_until_connected
from modelbus_delivery.watermarks import OffsetTracker
from modelbus_delivery.writer import TopicWriter

from .batching import BatchingPredictor, BatchSettings
from .handler import RequestHandler
from .measured import MeasuredHandler, MeasuredPredictor
from .metrics import WorkerMetrics
from .ports import Containers, Predictor
from .preparation.plan import Ownership
from .preparation.preparer import Preparer
from .preparation.reports import ServingReporter, default_worker_id
from .problem_reports import ProblemReporter
from .progress_notices import ProgressNotices
from .quarantine import WorkerQuarantine
from .reply_policy import ReplyPolicy
from .request import RequestLimits
from .tracing import BATCH_SPANS, traced_handler, traced_predictor

log = get_logger("worker")


def _never(name: str, version: str) -> bool:
    return False


class WorkerService:
    """Consumes the requests topic and publishes results, error results and DLQ copies."""

    def __init__(
        self, settings: ModelbusSettings, predictor: Predictor, max_timeout_s: float = 60.0,
        *, metrics: WorkerMetrics | None = None, containers: Containers | None = None,
    ) -> None:
        self._settings = settings
        self.metrics = metrics = metrics or WorkerMetrics()
        self._containers = containers
        self._topics = topics = settings.topics
        self._kafka = kafka = connection_options(settings)
        self._writer = TopicWriter(
            kafka, max_request_size=settings.max_message_bytes, backoff=backoff_for(settings)
        )
        self.catalog = CatalogView(
            kafka, topics.catalog, settings.kafka_catalog_fetch_max_wait_ms
        )
        # Versions the pool cannot start are reported to the catalog (discovered topic).
        self.problems = ProblemReporter(self._writer, topics.discovered, self.catalog.entries)
        self.preparer: Preparer | None = None
        notices: ProgressNotices | None = None
        if containers is not None:
            containers.add_start_listener(self.problems)
            containers.add_start_listener(self._container_started)
            notices = ProgressNotices(containers, self._publish)
            self.preparer = Preparer(
                self.catalog.entries, self._ownership, containers,
                ServingReporter(self._writer, topics.discovered, self.catalog.entries,
                                settings.worker_id or default_worker_id()),
                policy=settings.worker_prepare,
                concurrency=settings.worker_prepare_concurrency,
                max_versions=settings.worker_prepare_max_versions,
                observe=metrics.prepared,
            )
        predictor = MeasuredPredictor(predictor, metrics.batch_predicted)
        if settings.worker_batching:
            batch = BatchSettings(
                settings.worker_batch_window_ms / 1000,
                settings.worker_batch_max_rows,
                settings.worker_batches_in_flight,
            )
            predictor = BatchingPredictor(
                predictor, batch, batchable=self._batching_allowed,
                starting=containers.starting if containers is not None else _never,
                spans=BATCH_SPANS,
            )
        self._predictor = predictor
        policy = ReplyPolicy.from_settings(settings)
        limits = RequestLimits(
            settings.max_message_bytes, settings.max_request_rows,
            settings.max_decoded_bytes, max_timeout_s,
        )
        self.runtime = DeliveryRuntime(
            kafka,
            RuntimeConfig(
                name="worker",
                topics=(topics.requests,),
                group_id=f"{settings.topic_prefix}worker",
                max_in_flight=settings.worker_max_in_flight,
                fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
                fetch_max_wait_busy_ms=settings.kafka_fetch_max_wait_busy_ms,
                fetch_busy_rate=settings.kafka_fetch_busy_rate,
                max_partition_fetch_bytes=max(settings.max_message_bytes, 1_048_576),
                fetch_max_bytes=max(4 * settings.max_message_bytes, 52_428_800),
                session_timeout_ms=settings.kafka_session_timeout_ms,
                heartbeat_interval_ms=settings.kafka_session_timeout_ms // 3,
            ),
            traced_handler(
                MeasuredHandler(
                    RequestHandler(
                        self.catalog.entries,
                        traced_predictor(MeasuredPredictor(predictor, metrics.request_predicted)),
                        topics, policy, limits, catch_up=self.catalog.sync, notices=notices,
                    ),
                    metrics, self.catalog.entries,
                ),
                f"{settings.topic_prefix}worker",
            ),
            WorkerQuarantine(topics, policy, settings.max_message_bytes),
            self._writer,
            backoff_for(settings),
        )
        self._guard: TopicGuard | None = None  # re-creates lost topics, re-reads the catalog
        if self.preparer is not None:
            self.runtime.assignment_listeners.append(self.preparer.wake)

    async def _publish(self, out: Outgoing) -> None:
        await self._writer.send(out.topic, out.key, out.value, out.headers)

    def _ownership(self) -> Ownership | None:
        """The request partitions this worker holds (None until the group assigned some)."""
        topic = self._topics.requests
        count = self.runtime.partition_count(topic)
        if count is None:
            return None
        held = frozenset(tp.partition for tp in self.runtime.assigned() if tp.topic == topic)
        return Ownership(held, count)

    def _container_started(
        self, name: str, version: str, error: ModelbusError | None, seconds: float
    ) -> None:
        self.metrics.container_started(name, version, error is None, seconds)

    def _batching_allowed(self, name: str, version: str) -> bool:
        entry = self.catalog.entries.get(f"{name}/{version}")
        return entry is None or entry.batching

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def readiness_checks(self) -> dict[str, Check]:
        checks: dict[str, Check] = {"kafka": self._kafka_ready}
        if self._containers is not None:
            checks["docker"] = self._containers.engine_reachable
        return checks

    def _kafka_ready(self) -> bool:
        return kafka_ready(self._guard, self.runtime.running)

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
        s = self._settings
        backoff = backoff_for(s)
        servers = s.kafka_bootstrap_servers
        specs = topic_specs(s, ("requests", "results", "dlq", "catalog", "discovered"))
        await retry_until_connected(
            "kafka", lambda: ensure_topics(self._kafka, specs), backoff, bootstrap_servers=servers
        )
        await retry_until_connected("kafka", self._writer.start, backoff, bootstrap_servers=servers)
        await self.catalog.start()
        await retry_until_connected(
            "kafka", self.runtime.start, backoff, bootstrap_servers=servers
        )
        self._guard = TopicGuard(self._kafka, specs, self._topics_lost, name="worker")
        self._guard.start()
        if self.preparer is not None:
            await self.preparer.start(self.catalog.changes())
        log.info("worker_started", topic=self._topics.requests, catalog=len(self.catalog.entries))

    async def _topics_lost(self) -> None:
        """The broker lost its topics and they were made again: read the catalog again
        and see the requests topic as it is now."""
        await self.runtime.refresh_metadata()
        await self.catalog.reread()

    async def stop(self, drain_timeout_s: float | None = None) -> None:
        """Stop fetching, let requests in flight finish (for at most ``drain_timeout_s``,
        default the runtime's) and commit, then disconnect."""
        if self.preparer is not None:
            await self.preparer.stop()
        if self._guard is not None:
            await self._guard.stop()
        await self.runtime.stop(drain_timeout_s)
        await self.catalog.stop()
        await self.problems.close()
        await self._writer.stop()
        await close_quietly("container pool", self._predictor.close, timeout_s=60)
        log.info("worker_stopped", answered=self.runtime.handled,
                 quarantined=self.runtime.quarantined)

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self.runtime.wait()
        finally:
            await self.stop()
