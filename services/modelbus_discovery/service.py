"""The discovery loop: list the registry, emit what changed, wait, repeat.

Its memory is the discovered topic itself (replayed on start), so restarts are idempotent
and several replicas agree on what has been announced. Between listings, registered models
named by a webhook, or seen changed by the fast path's frequent look at the most recently
updated models (``recent.py``), are listed alone, inside the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import structlog
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from modelbus_contract.messages import DiscoveryEvent, message_type
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.logs import get_logger
from modelbus_delivery.ops_http import Check
from modelbus_delivery.retry import backoff_for
from modelbus_delivery.service_lifecycle import ServiceLifecycle, serve_until
from modelbus_delivery.topics import read_to_end, retry_until_connected
from modelbus_delivery.writer import PublishFailed, TopicWriter

from .changes import VersionSnapshot, diff, fold
from .metrics import DiscoveryMetrics
from .recent import ModelState, RecentChanges, RecentModels
from .webhook_receiver import WebhookReceiver

log = get_logger("discovery")

Trigger = Literal["webhook", "recent"]


class Registry(Protocol):
    """Port: the registry listing (blocking; called off the event loop)."""

    def tagged_versions(self) -> list[VersionSnapshot]: ...

    def tagged_versions_of(self, name: str) -> list[VersionSnapshot]: ...

    def recently_updated_models(self, limit: int) -> list[ModelState]: ...


class DiscoveryService:
    """Announces tagged READY model versions on the discovered topic.

    Every collaborator is given (``modelbus.wiring.build_discovery`` builds them): the
    shared ``lifecycle`` makes the topic, connects ``writer`` and guards the topic; the
    service replays the topic, runs its loop and the webhook receiver.
    """

    def __init__(
        self, settings: ModelbusSettings, registry: Registry, kafka: dict[str, Any],
        lifecycle: ServiceLifecycle, writer: TopicWriter, metrics: DiscoveryMetrics,
        webhooks: Callable[[Callable[[str], None]], WebhookReceiver | None],
        recent: RecentModels | None,
    ) -> None:
        """``webhooks`` makes the receiver (None: none) calling back with a model's name;
        ``recent`` is the fast path's memory (None: no fast path)."""
        self._settings = settings
        self.metrics = metrics
        self.last_listing_ok: bool | None = None  # None: no listing finished yet
        self._registry = registry
        self._topic = settings.topics.discovered
        self._kafka = kafka
        self.lifecycle = lifecycle
        self._writer = writer
        self._known: dict[str, DiscoveryEvent] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.scans = 0  # completed listings, for operators and tests
        self.model_scans = 0  # completed listings of one model asked for by a webhook
        self.recent_model_scans = 0  # ... asked for by the fast path alone
        self.recent_looks = 0  # completed looks at the recently updated models
        self._models_to_scan: dict[str, Trigger] = {}
        self._recent = recent
        self._recent_failing = False
        self._full_scan_asked = False
        self._webhooks: WebhookReceiver | None = webhooks(self.scan_model_soon)
        self.consecutive_failures = 0

    async def start(self) -> None:
        """Connect (retrying), replay the topic, and start polling in the background."""
        # A broker that comes back without the discovered topic (the embedded one keeps
        # it in memory) has lost every announcement: forget them and announce all again.
        await self.lifecycle.start(on_topics_lost=self._topic_lost)
        for record in await retry_until_connected(
            "kafka", lambda: read_to_end(self._kafka, self._topic),
            backoff_for(self._settings), bootstrap_servers=self._settings.kafka_bootstrap_servers,
        ):
            if message_type(record.headers):
                continue  # a worker's report for the catalog, not a discovery event
            try:
                fold(self._known, DiscoveryEvent.model_validate_json(record.value or b""))
            except ValidationError as exc:  # not ours to judge: the catalog quarantines it
                if record.value is not None:
                    log.warning("discovered_record_unreadable", offset=record.offset,
                                error=str(exc)[:300])
        log.info("discovery_started", topic=self._topic, known_versions=len(self._known))
        self._task = asyncio.create_task(self._run(), name="discovery-loop")
        if self._webhooks is not None:
            await self._webhooks.start()

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def readiness_checks(self) -> dict[str, Check]:
        return {
            "kafka": lambda: self.lifecycle.kafka_ready(self.running),
            "mlflow": lambda: self.last_listing_ok is True,
        }

    async def refresh_metrics(self) -> None:
        self.metrics.set_known(self._known.values())

    async def _topic_lost(self) -> None:
        log.warning("discovered_topic_lost", forgotten_versions=len(self._known))
        self._known.clear()
        self.rescan_now()

    def rescan_now(self) -> None:
        """Skip the rest of the current wait: list the whole registry now."""
        self._full_scan_asked = True
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def scan_model_soon(self, name: str) -> None:
        """List registered model ``name`` alone between polls (a registry webhook named it)."""
        self._models_to_scan[name] = "webhook"
        self._wake.set()

    async def stop(self) -> None:
        if self._webhooks is not None:
            await self._webhooks.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.lifecycle.stop()
        log.info("discovery_stopped")

    async def run_forever(self) -> None:
        await serve_until(self, self._loop_ended)

    async def _loop_ended(self) -> None:
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        backoff = backoff_for(self._settings)
        while True:
            # The fast path's memory is refreshed just before each listing, so that whatever
            # changes after it is seen by the next look: what this look finds changed, the
            # listing itself covers.
            await self._look_at_recent()
            started = time.perf_counter()
            try:
                snapshots = await asyncio.to_thread(self._registry.tagged_versions)
            except Exception as exc:  # any registry failure: report, back off, keep going
                self.last_listing_ok = False
                self.metrics.scanned("registry_error", time.perf_counter() - started)
                delay = backoff.next_delay()
                self.consecutive_failures = backoff.failures
                log.warning(
                    "registry_unreachable",
                    error=f"{type(exc).__name__}: {str(exc)[:300]}",
                    tracking_uri=self._settings.mlflow_tracking_uri,
                    failures=backoff.failures,
                    retry_in_s=round(delay, 2),
                )
                await self._sleep(delay)
                continue
            if backoff.failures:
                log.info("registry_reachable_again", failures=backoff.failures)
            backoff.reset()
            self.consecutive_failures = 0
            self.last_listing_ok = True
            listed_s = time.perf_counter() - started
            if not await self._publish(diff(self._known, snapshots)):
                self.metrics.scanned("publish_error", listed_s)
                await self._sleep(backoff.next_delay())
                continue
            self.metrics.scanned("ok", listed_s)
            self.scans += 1
            await self._sleep(self._settings.poll_interval_s)

    async def _publish(self, events: list[DiscoveryEvent]) -> bool:
        """Announce ``events``; False when Kafka failed (what was not sent is sent by the
        next scan, because only published events change what discovery knows)."""
        for event in events:
            with structlog.contextvars.bound_contextvars(
                model=event.name, model_version=event.version
            ):
                try:
                    await self._writer.send(
                        self._topic, event.key, event.model_dump_json().encode(),
                        {"event": event.kind, "schema_version": event.schema_version},
                    )
                except PublishFailed as exc:
                    log.error("discovery_publish_failed", error=exc.reason[:300],
                              retriable=exc.retriable)
                    if exc.retriable:
                        return False
                    continue
                fold(self._known, event)
                log.info(f"model_version_{event.kind}", fingerprint=event.fingerprint)
        return True

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until ``rescan_now``, looking at the recently updated models
        whenever a look is due; the models named by webhooks or seen changed meanwhile are
        scanned here, inside the loop, so that no two listings ever overlap."""
        clock = asyncio.get_running_loop().time
        deadline = clock() + seconds
        while True:
            now = clock()
            wait = deadline - now
            if self._recent is not None:
                wait = min(wait, self._recent.due_in(now))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0))
            except TimeoutError:
                if clock() >= deadline:
                    self._models_to_scan.clear()  # the full listing that follows covers them
                    return
                changes = await self._look_at_recent()
                if changes is not None:
                    self._rescan_changed(changes)  # the next turn does it
                continue
            self._wake.clear()
            if self._full_scan_asked:
                self._full_scan_asked = False
                return
            await self._scan_models()

    async def _look_at_recent(self) -> RecentChanges | None:
        """Look at the most recently updated models: what changed since the last look
        (None when the fast path is off or the look failed)."""
        if self._recent is None:
            return None
        clock = asyncio.get_running_loop().time
        try:
            states = await asyncio.to_thread(
                self._registry.recently_updated_models, self._recent.window
            )
        except Exception as exc:  # the webhooks and the full poll still find every change
            self._recent.failed(clock())
            self.metrics.looked("registry_error")
            if not self._recent_failing:
                self._recent_failing = True
                log.warning("recent_models_unavailable",
                            error=f"{type(exc).__name__}: {str(exc)[:300]}")
            return None
        if self._recent_failing:
            self._recent_failing = False
            log.info("recent_models_available_again")
        self.metrics.looked("ok")
        self.recent_looks += 1
        return self._recent.observe(states, clock())

    def _rescan_changed(self, changes: RecentChanges) -> None:
        """Have the models a look saw changed listed alone, or everything after more
        changes than one look shows."""
        if changes.overrun:
            log.info("recent_models_overrun", models=len(changes.models))
            self.rescan_now()
            return
        if not changes.models:
            return
        log.info("recent_models_changed", models=list(changes.models[:20]),
                 count=len(changes.models))
        for name in changes.models:
            self._models_to_scan.setdefault(name, "recent")
        self._wake.set()

    async def _scan_models(self) -> None:
        while self._models_to_scan:
            name, trigger = self._models_to_scan.popitem()
            try:
                snapshots = await asyncio.to_thread(self._registry.tagged_versions_of, name)
            except Exception as exc:  # the next poll lists it anyway
                log.warning("model_scan_failed", model=name, trigger=trigger,
                            error=f"{type(exc).__name__}: {str(exc)[:300]}")
                continue
            if await self._publish(diff(self._known, snapshots, model=name)):
                self.metrics.model_scanned(trigger)
                if trigger == "webhook":
                    self.model_scans += 1
                else:
                    self.recent_model_scans += 1
