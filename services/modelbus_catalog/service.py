"""The catalog service: discovery events in, catalog entries (or tombstones) out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import structlog
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError

from modelbus_contract.channels import topic_specs
from modelbus_contract.interpreters import InterpreterSettings
from modelbus_contract.messages import (
    MODEL_PROBLEM_TYPE,
    SERVING_REPORT_TYPE,
    CatalogEntry,
    DiscoveryEvent,
    ModelProblemReport,
    ServingReport,
    message_type,
    version_key,
)
from modelbus_contract.redact import redact
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.dlq import dlq_copy, dlq_note
from modelbus_delivery.logs import get_logger
from modelbus_delivery.ops_http import Check, kafka_ready
from modelbus_delivery.records import Inbound, Outgoing, PoisonRecord
from modelbus_delivery.retry import backoff_for
from modelbus_delivery.runtime import DeliveryRuntime, Handler, RuntimeConfig
from modelbus_delivery.topics import TopicGuard, ensure_topics, retry_until_connected
from modelbus_delivery.writer import TopicWriter

from .entry import ModelFacts, build_entry
from .metrics import CatalogMetrics
from .reader import ModelUnreadable
from .serving import serving_kept, with_serving
from .worker_problems import carried_over, with_report

log = get_logger("catalog")

M = TypeVar("M", bound=BaseModel)

# Failures that are neither "registry unreachable" nor "model unreadable" are retried this
# many times before the entry is published as invalid, so one bad version cannot block the
# partition forever.
MAX_UNEXPECTED_FAILURES = 5


class ModelReader(Protocol):
    """Port: reads a version's MLmodel facts (blocking; called off the event loop)."""

    def read(self, name: str, version: str) -> ModelFacts: ...


class CatalogQuarantine:
    """A discovery event that cannot be turned into an entry goes to the DLQ with the reason."""

    def __init__(self, dlq_topic: str) -> None:
        self._dlq = dlq_topic

    def poisoned(self, record: Inbound, reason: str) -> list[Outgoing]:
        return [dlq_copy(self._dlq, record, "bad_request", reason)]

    def unpublishable(self, record: Inbound, out: Outgoing, reason: str) -> list[Outgoing]:
        return [dlq_copy(self._dlq, record, "internal", f"the entry was refused: {reason}")]

    def undecodable(self, topic: str, partition: int, offset: int, reason: str) -> list[Outgoing]:
        return [dlq_note(self._dlq, topic, partition, offset, "bad_request", reason)]


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
    Every collaborator is given (``modelbus.wiring.build_catalog`` builds them).
    """

    def __init__(
        self, settings: ModelbusSettings, reader: ModelReader, kafka: dict[str, Any],
        writer: TopicWriter, view: CatalogView, consumer: Callable[[Handler], DeliveryRuntime],
        metrics: CatalogMetrics, interpreters: InterpreterSettings,
    ) -> None:
        self._settings = settings
        self._interpreters = interpreters  # what workers offer
        self.metrics = metrics
        self.last_read_ok: bool | None = None  # the last MLflow read reached MLflow
        self._reader = reader
        self._topics = topics = settings.topics
        self._catalog_topic = topics.catalog
        self._kafka = kafka
        self._writer = writer
        self.runtime = consumer(self.handle_record)  # the discovered topic, into handle_record
        self._guard: TopicGuard | None = None
        # The catalog topic as it is (every partition), for the entries-by-status gauge.
        self.view = view
        # The entries this instance published, ahead of the view reading them back: a
        # worker's report and a discovery event of one version may follow each other fast.
        # None: removed (the view may not have read the tombstone yet).
        self._published: dict[str, CatalogEntry | None] = {}

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def readiness_checks(self) -> dict[str, Check]:
        return {
            "kafka": lambda: kafka_ready(self._guard, self.runtime.running),
            "mlflow": lambda: self.last_read_ok is not False,
        }

    async def refresh_metrics(self) -> None:
        self.metrics.set_entries(self.view.entries.values())

    async def _topics_lost(self) -> None:
        await self.runtime.refresh_metadata()
        await self.view.reread()

    async def start(self) -> None:
        servers = self._settings.kafka_bootstrap_servers
        backoff = backoff_for(self._settings)
        specs = topic_specs(self._settings, ("discovered", "catalog", "dlq"))
        await retry_until_connected(
            "kafka", lambda: ensure_topics(self._kafka, specs), backoff, bootstrap_servers=servers
        )
        await retry_until_connected("kafka", self._writer.start, backoff, bootstrap_servers=servers)
        await retry_until_connected("kafka", self.view.start, backoff, bootstrap_servers=servers)
        await retry_until_connected("kafka", self.runtime.start, backoff, bootstrap_servers=servers)
        # Re-created if lost, and the consumer and the view then see the new topic as it is.
        self._guard = TopicGuard(self._kafka, specs, self._topics_lost, name="catalog")
        self._guard.start()
        log.info("catalog_started", topic=self._catalog_topic)

    async def stop(self) -> None:
        if self._guard is not None:
            await self._guard.stop()
        await self.runtime.stop()
        await self.view.stop()
        await self._writer.stop()
        log.info("catalog_stopped")

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self.runtime.wait()
        finally:
            await self.stop()

    async def handle_record(self, record: Inbound) -> list[Outgoing]:
        """One record of the discovered topic → the entry (or tombstone) to publish."""
        if record.value is None:
            return []  # a tombstone compacting the discovered topic: nothing to announce
        kind = message_type(record.headers)
        if kind == MODEL_PROBLEM_TYPE:
            return self.handle_report(
                _parsed(ModelProblemReport, record.value, "a model problem report"))
        if kind == SERVING_REPORT_TYPE:
            return self.handle_serving(_parsed(ServingReport, record.value, "a serving report"))
        if kind:  # a message of a newer writer: not for this catalog to judge
            log.info("discovered_message_skipped", message_type=kind[:80],
                     partition=record.partition, offset=record.offset)
            return []
        event = _parsed(DiscoveryEvent, record.value, "a discovery event")
        return [await self.handle(event)]

    async def handle(self, event: DiscoveryEvent) -> Outgoing:
        """The entry (or tombstone) for one discovery event."""
        with structlog.contextvars.bound_contextvars(model=event.name, model_version=event.version):
            if event.kind == "removed":
                log.info("catalog_entry_removed")
                self._published[event.key] = None
                return Outgoing(self._catalog_topic, event.key.encode(), None)
            facts = await self._read_facts(event)
            previous = self._current(event.key)
            entry = serving_kept(carried_over(
                build_entry(event, facts, self._settings.datagrok_tag, self._interpreters),
                previous,
            ), previous)
            log.info(
                "catalog_entry_built", status=entry.status, problems=len(entry.problems),
                inputs=[p.name for p in entry.inputs], outputs=[p.name for p in entry.outputs],
            )
            return self._publish(entry)

    def handle_report(self, report: ModelProblemReport) -> list[Outgoing]:
        """A worker's report merged into the version's current entry (re-published), or
        nothing when the version has no entry or the entry already says so."""
        key = version_key(report.name, report.version)
        with structlog.contextvars.bound_contextvars(model=report.name,
                                                     model_version=report.version):
            entry = self._current(key)
            if entry is None:
                log.info("model_problem_for_unknown_version", error_code=report.error_code)
                return []
            merged = with_report(entry, report)
            if merged is None:
                return []
            log.info("catalog_entry_worker_problem", error_code=report.error_code,
                     problems=len(merged.problems))
            return [self._publish(merged)]

    def handle_serving(self, report: ServingReport) -> list[Outgoing]:
        """A worker's serving state put in the version's current entry (re-published), or
        nothing when the version has no entry or the entry already says so."""
        with structlog.contextvars.bound_contextvars(model=report.name,
                                                     model_version=report.version):
            entry = self._current(version_key(report.name, report.version))
            if entry is None:
                log.info("serving_report_for_unknown_version", state=report.state)
                return []
            merged = with_serving(entry, report)
            if merged is None:
                return []
            log.info("catalog_entry_serving", state=report.state, worker=report.worker,
                     error_code=report.error_code)
            return [self._publish(merged)]

    def _current(self, key: str) -> CatalogEntry | None:
        if key in self._published:
            return self._published[key]
        return self.view.entries.get(key)

    def _publish(self, entry: CatalogEntry) -> Outgoing:
        self._published[entry.key] = entry
        return Outgoing(
            self._catalog_topic, entry.key.encode(), entry.model_dump_json().encode(),
            {"schema_version": entry.schema_version},
        )

    async def _read_facts(self, event: DiscoveryEvent) -> ModelFacts:
        backoff = backoff_for(self._settings)
        unexpected = 0
        while True:
            try:
                facts = await asyncio.to_thread(self._reader.read, event.name, event.version)
                self.last_read_ok = True
                return facts
            except ModelUnreadable as exc:
                self.last_read_ok = True
                return ModelFacts(problems=[redact(f"model files unreadable: {exc}")])
            except Exception as exc:
                unreachable = _is_connection_error(exc)
                self.last_read_ok = not unreachable
                if not unreachable:
                    unexpected += 1
                    if unexpected >= MAX_UNEXPECTED_FAILURES:
                        return ModelFacts(problems=[redact(f"reading the model failed: {exc}")])
                delay = backoff.next_delay()
                log.warning(
                    "registry_read_failed", error=f"{type(exc).__name__}: {str(exc)[:300]}",
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)


def _parsed(message: type[M], value: bytes, what: str) -> M:
    """``value`` read as ``message``; a record that is not one is poison."""
    try:
        return message.model_validate_json(value)
    except ValidationError as exc:
        raise PoisonRecord(f"not {what}: {str(exc)[:500]}") from None


def _is_connection_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    # Credentials refused are the operator's to fix: wait for them like for an outage,
    # rather than publishing the entry as invalid.
    transient = ("connection", "max retries", "timed out", "timeout", "refused",
                 "unauthenticated", "permission_denied", "401", "403")
    return any(s in text for s in transient)
