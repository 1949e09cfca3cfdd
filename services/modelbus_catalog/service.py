"""The catalog service: discovery events in, catalog entries (or tombstones) out."""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from modelbus_contract.messages import CatalogEntry, DiscoveryEvent
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.kafka_io import TopicSpec, TopicWriter, ensure_topics, retry_until_connected
from modelbus_delivery.logs import framework_logger, get_logger
from modelbus_delivery.retry import backoff_for

from .entry import ModelFacts, build_entry
from .reader import ModelUnreadable

log = get_logger("catalog")

# Failures that are neither "registry unreachable" nor "model unreadable" are retried this
# many times before the entry is published as invalid, so one bad version cannot block the
# partition forever.
MAX_UNEXPECTED_FAILURES = 5


class ModelReader(Protocol):
    """Port: reads a version's MLmodel facts (blocking; called off the event loop)."""

    def read(self, name: str, version: str) -> ModelFacts: ...


class CatalogService:
    """Keeps the compacted catalog topic in line with the discovered topic."""

    def __init__(self, settings: ModelbusSettings, reader: ModelReader) -> None:
        self._settings = settings
        self._reader = reader
        topics = settings.topics
        self._catalog_topic = topics.catalog
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id="modelbus-catalog",
            logger=framework_logger("catalog"),
        )
        self.broker.subscriber(
            topics.discovered,
            group_id=f"{settings.topic_prefix}catalog",
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.ACK,
            title="catalog.consume.models-discovered",
            description="Discovery events; the offset is committed after the entry is published.",
        )(self.handle)
        self.broker.publisher(
            topics.catalog,
            title="catalog.publish.models-catalog",
            description="Catalog entries keyed `name/version` (compacted); a null value "
            "(tombstone) when a version is removed.",
            schema=CatalogEntry,
        )
        self._writer = TopicWriter(settings.kafka_bootstrap_servers)

    async def start(self) -> None:
        servers = self._settings.kafka_bootstrap_servers
        backoff = backoff_for(self._settings)
        topics = self._settings.topics
        specs = [
            TopicSpec(topics.discovered, compacted=True),
            TopicSpec(topics.catalog, compacted=True),
        ]
        await retry_until_connected(
            "kafka", lambda: ensure_topics(servers, specs), backoff, bootstrap_servers=servers
        )
        await retry_until_connected("kafka", self._writer.start, backoff, bootstrap_servers=servers)
        await self.broker.start()
        log.info("catalog_started", topic=self._catalog_topic)

    async def stop(self) -> None:
        await self.broker.stop()
        await self._writer.stop()
        log.info("catalog_stopped")

    async def run_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def handle(self, event: DiscoveryEvent) -> None:
        """Publish the entry (or tombstone) for one discovery event."""
        with structlog.contextvars.bound_contextvars(model=event.name, model_version=event.version):
            if event.kind == "removed":
                await self._writer.send(self._catalog_topic, event.key, None)
                log.info("catalog_entry_removed")
                return
            facts = await self._read_facts(event)
            entry = build_entry(event, facts, self._settings.datagrok_tag)
            await self._writer.send(
                self._catalog_topic, entry.key, entry.model_dump_json().encode(),
                {"schema_version": entry.schema_version},
            )
            log.info(
                "catalog_entry_published", status=entry.status, problems=len(entry.problems),
                inputs=[p.name for p in entry.inputs], outputs=[p.name for p in entry.outputs],
            )

    async def _read_facts(self, event: DiscoveryEvent) -> ModelFacts:
        backoff = backoff_for(self._settings)
        unexpected = 0
        while True:
            try:
                return await asyncio.to_thread(self._reader.read, event.name, event.version)
            except ModelUnreadable as exc:
                return ModelFacts(problems=[f"model files unreadable: {exc}"])
            except Exception as exc:
                if not _is_connection_error(exc):
                    unexpected += 1
                    if unexpected >= MAX_UNEXPECTED_FAILURES:
                        return ModelFacts(problems=[f"reading the model failed: {exc}"])
                delay = backoff.next_delay()
                log.warning(
                    "registry_read_failed", error=f"{type(exc).__name__}: {str(exc)[:300]}",
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)


def _is_connection_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(s in text for s in ("connection", "max retries", "timed out", "timeout", "refused"))
