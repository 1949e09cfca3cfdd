"""Discovery's fast path: every way a model becomes visible (or stops being) reaches the
discovered topic within 2 s, through the real MLflow server and broker.

The poll interval is five minutes and the session's MLflow server delivers no webhooks, so
nothing but the fast path (a look at the most recently updated registered models every
half second) can explain an event; each test also checks that no full listing ran while
it waited. The registry calls run off the event loop, so discovery keeps running during
them, and the latency is taken from the event's record timestamp. ``cleanup_models`` comes
first so that the models are deleted once the services have stopped.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from mlflow import MlflowClient
from structlog.testing import capture_logs
from tests.support.kafka import read_topic
from tests.support.waiting import async_wait_for

from modelbus.wiring import build_discovery
from modelbus_contract.messages import DiscoveryEvent
from modelbus_contract.settings import ModelbusSettings
from modelbus_discovery.recent import ModelState
from modelbus_discovery.registry import MlflowRegistry
from modelbus_discovery.service import DiscoveryService

from .sample_models import LoggedModel, register
from .test_discovery_catalog import Services

pytestmark = pytest.mark.integration

POLL_S = 300.0
BOUND_S = 2.0
# A discovery tag of this module's own: the session's registry holds other tests' models
# (tagged `datagrok`), whose events would mix with these tests' own.
TAG = f"datagrok-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(settings: ModelbusSettings) -> ModelbusSettings:
    """The session's settings with a poll too far away to explain any event."""
    return settings.model_copy(update={"poll_interval_s": POLL_S, "datagrok_tag": TAG})


@pytest.fixture
async def discovery(registry_services: Services) -> DiscoveryService:
    """Discovery (and the catalog) once its first listing is done."""
    service = registry_services[0]
    await async_wait_for(lambda: service.scans >= 1, 30, 0.05, "the first registry listing")
    return service


async def events(settings: ModelbusSettings, count: int = 0) -> list[tuple[DiscoveryEvent, int]]:
    """The discovered topic's events (with their record timestamps, ms), at least ``count``."""
    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.discovered,
        (lambda rs: len(rs) >= count) if count else None, timeout=10,
    )
    return [(DiscoveryEvent.model_validate_json(r.value), r.timestamp) for r in records]


async def listed(discovery: DiscoveryService) -> None:
    """Have discovery list the whole registry once more (its fast path's memory included)."""
    target = discovery.scans + 1
    discovery.rescan_now()
    await async_wait_for(lambda: discovery.scans >= target, 30, 0.05, "a full listing")


async def within_bound(
    discovery: DiscoveryService,
    settings: ModelbusSettings,
    change: Callable[[], Any],
    expected: list[tuple[str, str]],
) -> None:
    """Make ``change`` in the registry; its ``expected`` (kind, key) events must follow
    within ``BOUND_S`` of the call returning, with no full listing in between."""
    before = len(await events(settings))
    scans = discovery.scans
    await asyncio.to_thread(change)
    returned = time.time()
    got = (await events(settings, before + len(expected)))[before:]
    assert [(e.kind, e.key) for e, _ in got] == expected
    latency = max(ts for _, ts in got) / 1000 - returned
    assert discovery.scans == scans, "a full listing ran: the fast path is not what found it"
    assert latency <= BOUND_S, f"{expected} after {latency:.2f} s"
    print(f"{expected[0][0]} {len(expected)} event(s) after {latency:.2f} s")


async def test_model_tag_set_right_after_the_version_is_created(
    cleanup_models: list[str], discovery: DiscoveryService, settings: ModelbusSettings,
    mlflow_client: MlflowClient, sample_model: LoggedModel, model_name: str,
) -> None:
    cleanup_models.append(model_name)

    def log_then_tag() -> None:  # the Datagrok page's flow: log the model, then tag it
        register(mlflow_client, model_name, sample_model)
        mlflow_client.set_registered_model_tag(model_name, TAG, "")

    await within_bound(discovery, settings, log_then_tag, [("found", f"{model_name}/1")])


async def test_model_tag_set_long_after_the_version_exists(
    cleanup_models: list[str], discovery: DiscoveryService, settings: ModelbusSettings,
    mlflow_client: MlflowClient, sample_model: LoggedModel, model_name: str,
) -> None:
    cleanup_models.append(model_name)
    register(mlflow_client, model_name, sample_model)
    await listed(discovery)  # the untagged version is known to have been seen
    await within_bound(
        discovery, settings, lambda: mlflow_client.set_registered_model_tag(model_name, TAG, ""),
        [("found", f"{model_name}/1")],
    )


async def test_version_tag_set_and_removed(
    cleanup_models: list[str], discovery: DiscoveryService, settings: ModelbusSettings,
    mlflow_client: MlflowClient, sample_model: LoggedModel, model_name: str,
) -> None:
    cleanup_models.append(model_name)
    version = register(mlflow_client, model_name, sample_model)
    await listed(discovery)
    key = f"{model_name}/{version}"
    await within_bound(
        discovery, settings,
        lambda: mlflow_client.set_model_version_tag(model_name, version, TAG, ""),
        [("found", key)],
    )
    await within_bound(
        discovery, settings,
        lambda: mlflow_client.delete_model_version_tag(model_name, version, TAG),
        [("removed", key)],
    )


async def test_alias_set_then_moved(
    cleanup_models: list[str], discovery: DiscoveryService, settings: ModelbusSettings,
    mlflow_client: MlflowClient, sample_model: LoggedModel, model_name: str,
) -> None:
    cleanup_models.append(model_name)
    first = register(mlflow_client, model_name, sample_model, model_tags={TAG: ""})
    second = register(mlflow_client, model_name, sample_model)
    await listed(discovery)
    assert len(await events(settings)) == 2
    one, two = f"{model_name}/{first}", f"{model_name}/{second}"
    await within_bound(
        discovery, settings,
        lambda: mlflow_client.set_registered_model_alias(model_name, "champion", first),
        [("updated", one)],
    )
    await within_bound(
        discovery, settings,
        lambda: mlflow_client.set_registered_model_alias(model_name, "champion", second),
        [("updated", one), ("updated", two)],
    )
    latest = {e.key: e.aliases for e, _ in await events(settings)}
    assert latest == {one: [], two: ["champion"]}


async def test_model_tag_removed(
    cleanup_models: list[str], discovery: DiscoveryService, settings: ModelbusSettings,
    mlflow_client: MlflowClient, sample_model: LoggedModel, model_name: str,
) -> None:
    cleanup_models.append(model_name)
    register(mlflow_client, model_name, sample_model, model_tags={TAG: ""})
    register(mlflow_client, model_name, sample_model)
    await listed(discovery)
    assert len(await events(settings)) == 2
    await within_bound(
        discovery, settings, lambda: mlflow_client.delete_registered_model_tag(model_name, TAG),
        [("removed", f"{model_name}/1"), ("removed", f"{model_name}/2")],
    )


class FailingLooks:
    """The real registry, whose first ``failures`` looks at the recent models fail."""

    def __init__(self, registry: MlflowRegistry, failures: int) -> None:
        self._registry = registry
        self.failures = failures

    def tagged_versions(self) -> list[Any]:
        return self._registry.tagged_versions()

    def tagged_versions_of(self, name: str) -> list[Any]:
        return self._registry.tagged_versions_of(name)

    def recently_updated_models(self, limit: int) -> list[ModelState]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the registry is away")
        return self._registry.recently_updated_models(limit)


async def test_failed_looks_are_logged_once_and_the_fast_path_goes_on(
    settings: ModelbusSettings, mlflow_client: MlflowClient, sample_model: LoggedModel,
    model_name: str, cleanup_models: list[str],
) -> None:
    cleanup_models.append(model_name)
    registry = FailingLooks(MlflowRegistry(settings.mlflow_tracking_uri, settings.datagrok_tag),
                            failures=3)
    discovery = build_discovery(settings, registry)
    with capture_logs() as logs:
        await discovery.start()
        try:
            await async_wait_for(lambda: discovery.recent_looks >= 1, 30, 0.05,
                                 "a look that answers after the failures")
            assert registry.failures == 0 and discovery.running
            register(mlflow_client, model_name, sample_model)
            await within_bound(
                discovery, settings,
                lambda: mlflow_client.set_registered_model_tag(model_name, TAG, ""),
                [("found", f"{model_name}/1")],
            )
        finally:
            await discovery.stop()
    fast_path = [(e["event"], e["log_level"]) for e in logs if "recent_models_" in e["event"]
                 and e["event"] != "recent_models_changed"]
    assert fast_path == [("recent_models_unavailable", "warning"),
                         ("recent_models_available_again", "info")]
