"""The composition root: one function per service builds all it needs.

Settings, the Kafka writer, catalog view, consumer runtime, topic guard and the life cycle
that runs them, the MLflow reader, the webhook receiver, the Docker client and the
worker's handler wrappers are made here and passed in; no service or pool builds its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from modelbus_contract.settings import ModelbusSettings
from modelbus_contract.topic_plan import topic_spec, topic_specs
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.kafka_config import KafkaOptions, connection_options
from modelbus_delivery.ops_http import OpsSource, ops_endpoint
from modelbus_delivery.retry import backoff_for
from modelbus_delivery.runtime import DeliveryRuntime
from modelbus_delivery.service_lifecycle import Consumer, Publisher, ServiceLifecycle
from modelbus_delivery.topics import TopicGuard, provide_topics
from modelbus_delivery.writer import TopicWriter

if TYPE_CHECKING:
    from modelbus_catalog.retrying_reader import ModelReader
    from modelbus_catalog.service import CatalogService
    from modelbus_discovery.service import DiscoveryService, Registry
    from modelbus_gateway.service import GatewayService
    from modelbus_worker.pool.pool import ContainerPool
    from modelbus_worker.ports import Containers, Predictor
    from modelbus_worker.service import WorkerService
    from modelbus_worker.settings import ContainerSettings


def configure_mlflow_client(settings: ModelbusSettings) -> None:
    """Every MLflow call of this process fails fast instead of retrying for minutes.

    The services retry with their own backoff and report each failure; MLflow's built-in
    retries would hide an outage behind silent waiting. Explicit variables are kept.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    # MLflow's own handlers would print plain, unredacted lines beside the JSON logs.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.mlflow_timeout_s)))


def lifecycle(
    name: str, settings: ModelbusSettings, kafka: KafkaOptions, topics: tuple[str, ...],
    writer: TopicWriter, *, consumer: Consumer | None = None, view: CatalogView | None = None,
    publishers: Sequence[Publisher] = (),
) -> ServiceLifecycle:
    """The shared life cycle of service ``name``: its ``topics`` (names of ``Topics``) made
    as planned (or, with ``kafka_create_topics`` false, required) and guarded, its Kafka
    parts started and stopped in the one order."""
    specs = topic_specs(settings, topics)
    create = settings.kafka_create_topics
    return ServiceLifecycle(
        name, partial(provide_topics, kafka, specs, create=create), writer,
        TopicGuard(kafka, specs, name=name, create=create), backoff_for(settings),
        consumer=consumer, view=view, publishers=publishers,
        bootstrap_servers=settings.kafka_bootstrap_servers,
    )


def catalog_view(settings: ModelbusSettings, kafka: KafkaOptions) -> CatalogView:
    """A service's view of the catalog topic (made as planned if it is the first to need
    it, unless topics are not made at all)."""
    return CatalogView(
        kafka, settings.topics.catalog, settings.kafka_catalog_fetch_max_wait_ms,
        spec=topic_spec(settings, "catalog"), create_topic=settings.kafka_create_topics,
    )


def build_discovery(
    settings: ModelbusSettings, registry: Registry | None = None
) -> DiscoveryService:
    """The discovery service listing ``registry`` (default: the MLflow registry)."""
    from modelbus_discovery.metrics import DiscoveryMetrics
    from modelbus_discovery.recent import RecentModels
    from modelbus_discovery.service import DiscoveryService
    from modelbus_discovery.webhook_receiver import receiver_for

    if registry is None:
        configure_mlflow_client(settings)
        from modelbus_discovery.registry import MlflowRegistry

        registry = MlflowRegistry(
            settings.mlflow_tracking_uri, settings.datagrok_tag, settings.registry_page_size
        )
    kafka = connection_options(settings)
    writer = TopicWriter(kafka, backoff=backoff_for(settings))
    recent = (
        RecentModels(settings.recent_models, settings.recent_poll_interval_s)
        if settings.recent_poll_interval_s > 0 else None
    )
    return DiscoveryService(
        settings, registry, kafka, lifecycle("discovery", settings, kafka, ("discovered",), writer),
        writer, DiscoveryMetrics(), webhooks=partial(receiver_for, settings), recent=recent,
    )


def build_catalog(settings: ModelbusSettings, reader: ModelReader | None = None) -> CatalogService:
    """The catalog service reading versions through ``reader`` (default: MLflow's)."""
    from modelbus_catalog.handler import CatalogHandler
    from modelbus_catalog.metrics import CatalogMetrics
    from modelbus_catalog.quarantine import CatalogQuarantine
    from modelbus_catalog.retrying_reader import RetryingReader
    from modelbus_catalog.service import CatalogService, consumer_config
    from modelbus_contract.interpreters import InterpreterSettings

    if reader is None:
        configure_mlflow_client(settings)
        from modelbus_catalog.reader import MlflowModelReader

        reader = MlflowModelReader(settings.mlflow_tracking_uri)
    topics, kafka = settings.topics, connection_options(settings)
    writer = TopicWriter(kafka, backoff=backoff_for(settings))
    view = catalog_view(settings, kafka)
    retrying = RetryingReader(reader, partial(backoff_for, settings))
    # What workers offer: the catalog reads the same MODELBUS_WORKER_ settings they do.
    handler = CatalogHandler(topics.catalog, settings.datagrok_tag, InterpreterSettings(),
                             view.entries, retrying.read)
    metrics = CatalogMetrics()
    runtime = DeliveryRuntime(kafka, consumer_config(settings), handler.handle_record,
                              CatalogQuarantine(topics.dlq), writer, backoff_for(settings),
                              published=metrics.dead_letters.observer(topics.dlq))
    life = lifecycle("catalog", settings, kafka, ("discovered", "catalog", "dlq"), writer,
                     consumer=runtime, view=view)
    return CatalogService(life, handler, retrying, view, runtime, metrics)


def build_worker(settings: ModelbusSettings, pool: ContainerPool | None = None) -> WorkerService:
    """The worker serving warm containers: ``pool``, else one on the environment's Docker
    engine with the ``MODELBUS_WORKER_`` settings."""
    configure_mlflow_client(settings)
    from modelbus_worker.images.docker_build import docker_client
    from modelbus_worker.pool.pool import ContainerPool
    from modelbus_worker.settings import ContainerSettings

    if pool is None:
        pool = ContainerPool(ContainerSettings(), docker_client(), settings.mlflow_tracking_uri)
    return assemble_worker(
        settings, pool, max_timeout_s=pool.settings.request_timeout_s, containers=pool
    )


def assemble_worker(
    settings: ModelbusSettings, predictor: Predictor, max_timeout_s: float = 60.0,
    *, containers: Containers | None = None,
) -> WorkerService:
    """The worker around ``predictor``: its adapters and the handler's whole wrapper stack
    (outermost first: Answering (headers read once, records made from the answer),
    traced, measured, RequestHandler, traced and measured predictor, BatchingPredictor
    when batching, measured batches, the predictor)."""
    from modelbus_worker import service as w
    from modelbus_worker.answering import Answering
    from modelbus_worker.batching import BatchingPredictor, BatchSettings
    from modelbus_worker.handler import RequestHandler
    from modelbus_worker.measured import MeasuredHandler, MeasuredPredictor
    from modelbus_worker.metrics import WorkerMetrics
    from modelbus_worker.preparation.preparer import Preparer
    from modelbus_worker.preparation.reports import ServingReporter, default_worker_id
    from modelbus_worker.problem_reports import ProblemReporter
    from modelbus_worker.progress_notices import ProgressNotices
    from modelbus_worker.quarantine import WorkerQuarantine
    from modelbus_worker.replies import ResultEncoder
    from modelbus_worker.reply_policy import ReplyPolicy
    from modelbus_worker.request import RequestLimits
    from modelbus_worker.tracing import BATCH_SPANS, traced_handler, traced_predictor

    s, topics, kafka = settings, settings.topics, connection_options(settings)
    metrics = WorkerMetrics()
    writer = TopicWriter(kafka, max_request_size=s.max_message_bytes, backoff=backoff_for(s))
    catalog = catalog_view(s, kafka)
    problems = ProblemReporter(writer, topics.discovered, catalog.entries)
    notices: ProgressNotices | None = None
    if containers is not None:
        containers.add_start_listener(problems)
        containers.add_start_listener(w.counted_starts(metrics))
        notices = ProgressNotices(containers, w.publisher(writer))
    batches: Predictor = MeasuredPredictor(predictor, metrics.batch_predicted)
    if s.worker_batching:
        batches = BatchingPredictor(
            batches,
            BatchSettings(s.worker_batch_window_ms / 1000, s.worker_batch_max_rows,
                          s.worker_batches_in_flight, s.worker_lane_hold_ms / 1000),
            batchable=w.batchable(catalog.entries),
            starting=containers.starting if containers is not None else w.never,
            spans=BATCH_SPANS,
        )
    policy = ReplyPolicy.from_settings(s)
    limits = RequestLimits(s.max_message_bytes, s.max_request_rows, s.max_decoded_bytes,
                           max_timeout_s)
    handler = Answering(
        traced_handler(
            MeasuredHandler(
                RequestHandler(
                    catalog.entries,
                    traced_predictor(MeasuredPredictor(batches, metrics.request_predicted)),
                    limits, catch_up=catalog.sync, notices=notices, encoder=ResultEncoder(),
                ),
                metrics, catalog.entries,
            ),
            f"{s.topic_prefix}worker",
        ),
        policy, topics.dlq,
    )
    runtime = DeliveryRuntime(
        kafka, w.consumer_config(s), handler,
        WorkerQuarantine(topics, policy, s.max_message_bytes), writer, backoff_for(s),
        published=metrics.dead_letters.observer(topics.dlq),
        bulk_writer=TopicWriter(kafka, max_request_size=s.max_message_bytes,
                                backoff=backoff_for(s)),
    )
    preparer: Preparer | None = None
    if containers is not None:
        preparer = Preparer(
            catalog.entries, w.ownership(runtime, topics.requests), containers,
            ServingReporter(writer, topics.discovered, catalog.entries,
                            s.worker_id or default_worker_id()),
            policy=s.worker_prepare, concurrency=s.worker_prepare_concurrency,
            max_versions=s.worker_prepare_max_versions, observe=metrics.prepared,
        )
        runtime.assignment_listeners.append(preparer.wake)
    life = lifecycle("worker", s, kafka,
                     ("requests", "requests_bulk", "results", "dlq", "catalog", "discovered"),
                     writer, consumer=runtime, view=catalog, publishers=(problems,))
    return w.WorkerService(life, catalog, runtime, batches, metrics,
                           containers=containers, preparer=preparer)


def build_gateway(settings: ModelbusSettings) -> GatewayService:
    """The HTTP gateway on ``gateway_host:gateway_port``: one shared client (a reply topic of
    its own per process), a catalog view, the bounds and tokens of the settings."""
    from pathlib import Path

    from modelbus_client.async_client import AsyncModelbusClient
    from modelbus_gateway.core import Gateway
    from modelbus_gateway.http_guard import GatewayConfig, read_tokens
    from modelbus_gateway.metrics import GatewayMetrics
    from modelbus_gateway.mlflow_codec import BodyLimits
    from modelbus_gateway.routes import build_app
    from modelbus_gateway.service import GatewayService

    s = settings
    tokens_file = Path(s.gateway_tokens_file).read_text() if s.gateway_tokens_file else None
    config = GatewayConfig(
        max_body_bytes=s.gateway_max_body_bytes,
        body=BodyLimits(s.gateway_max_json_depth, s.gateway_max_json_elements,
                        s.max_request_rows, s.max_decoded_bytes),
        max_in_flight=s.gateway_max_in_flight,
        timeout_s=s.gateway_timeout_s,
        max_timeout_s=s.gateway_max_timeout_s,
        retry_after_s=s.gateway_retry_after_s,
        tokens=read_tokens(s.gateway_tokens.get_secret_value() if s.gateway_tokens else None,
                           tokens_file),
    )
    view = catalog_view(s, connection_options(s))
    client = AsyncModelbusClient(settings=s)
    metrics = GatewayMetrics()
    app = build_app(Gateway(client, view, s.max_message_bytes), config, metrics)
    guard = TopicGuard(connection_options(s), topic_specs(s, ("requests",)), name="gateway",
                       create=s.kafka_create_topics)
    return GatewayService(app, client, view, metrics, s.gateway_host, s.gateway_port, guard)


@dataclass(frozen=True)
class ImageTools:
    """What ``modelbus images`` works with: the workers' container settings and the Docker
    engine's client, connected when a command first asks (after its options are checked)."""

    settings: ContainerSettings
    docker: Callable[[], Any]


def build_images() -> ImageTools:
    """The image commands' settings (``MODELBUS_WORKER_``) and Docker client."""
    from modelbus_worker.images.docker_build import docker_client
    from modelbus_worker.settings import ContainerSettings

    return ImageTools(ContainerSettings(), docker_client)


class RunnableService(OpsSource, Protocol):
    async def run_forever(self) -> None: ...


async def run_with_metrics(
    name: str, service: RunnableService, settings: ModelbusSettings
) -> None:
    """Run ``service`` with its metrics endpoint on ``settings.metrics_port`` (0: none)."""
    async with ops_endpoint(service, settings.metrics_host, settings.metrics_port, name):
        await service.run_forever()
