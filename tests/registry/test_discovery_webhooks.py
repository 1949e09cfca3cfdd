"""Instant discovery: a real MLflow server calls discovery's webhook receiver.

The poll interval is five minutes here and the fast path (the look at recently updated
models) is off, so whatever reaches the discovered topic or the catalog after discovery's
first listing came through a webhook. The MLflow server is
this module's own: the session's does not deliver webhooks to local addresses.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from mlflow import MlflowClient
from pydantic import SecretStr
from structlog.testing import capture_logs
from tests.support.kafka import read_topic
from tests.support.settings import isolated_settings
from tests.support.waiting import async_wait_for

from modelbus.stack import EmbeddedMlflow, StackError, free_tcp_port
from modelbus.stack.webhook import WEBHOOK_NAME, register_webhook
from modelbus.wiring import build_catalog, build_discovery
from modelbus_contract.messages import DiscoveryEvent
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_discovery.service import DiscoveryService
from modelbus_discovery.webhooks import WEBHOOK_PATH, sign

from .sample_models import LoggedModel, log_sample_model, register

pytestmark = pytest.mark.integration

POLL_S = 300.0
SECRET = f"test-{uuid.uuid4().hex}"
ENCRYPTION_KEY = base64.urlsafe_b64encode(b"modelbus webhook tests: 32 bytes").decode()


@pytest.fixture(scope="module")
def webhook_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMlflow]:
    server = EmbeddedMlflow(
        free_tcp_port(), tmp_path_factory.mktemp("mlflow-webhooks"), webhook_key=ENCRYPTION_KEY
    )
    try:
        server.start()
    except StackError as exc:
        server.stop()
        pytest.fail(f"MLflow with webhooks could not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver_url(webhook_mlflow: EmbeddedMlflow) -> str:
    """The receiver's URL, registered (twice: the second start updates, never adds)."""
    port = free_tcp_port()
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    first = register_webhook(webhook_mlflow.tracking_uri, f"http://127.0.0.1:1{WEBHOOK_PATH}",
                             "old-secret")
    assert register_webhook(webhook_mlflow.tracking_uri, url, SECRET) == first
    client = MlflowClient(webhook_mlflow.tracking_uri, webhook_mlflow.tracking_uri)
    ours = [w for w in client.list_webhooks() if w.name == WEBHOOK_NAME]
    assert [(w.url, sorted(str(e) for e in w.events)) for w in ours] == [
        (url, ["model_version.created", "model_version_alias.created",
               "model_version_alias.deleted", "model_version_tag.deleted",
               "model_version_tag.set"])
    ]
    return url


@pytest.fixture(scope="module")
def logged_model(webhook_mlflow: EmbeddedMlflow) -> LoggedModel:
    return log_sample_model(webhook_mlflow.tracking_uri)


@pytest.fixture
def hook_settings(
    kafka_bootstrap: str, webhook_mlflow: EmbeddedMlflow, receiver_url: str
) -> ModelbusSettings:
    return isolated_settings(kafka_bootstrap, webhook_mlflow.tracking_uri, "hooks").model_copy(
        update={"poll_interval_s": POLL_S, "webhook_port": urlsplit(receiver_url).port,
                "webhook_secret": SecretStr(SECRET), "recent_poll_interval_s": 0}
    )


@pytest.fixture
def client(webhook_mlflow: EmbeddedMlflow, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    # The services turn MLflow's HTTP retries off for this whole process; the test's own
    # calls keep a few, or a keep-alive connection the server closes just then fails them.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    return MlflowClient(webhook_mlflow.tracking_uri, webhook_mlflow.tracking_uri)


@pytest.fixture
def model_name(client: MlflowClient) -> Iterator[str]:
    name = f"hooked-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(Exception):  # never registered
        client.delete_registered_model(name)


@pytest.fixture
async def discovery(hook_settings: ModelbusSettings) -> AsyncIterator[DiscoveryService]:
    """Discovery (with its receiver) and the catalog; returns once the first listing is done."""
    service = build_discovery(hook_settings)
    catalog = build_catalog(hook_settings)
    async with contextlib.AsyncExitStack() as running:
        for each in (service, catalog):
            await each.start()
            running.push_async_callback(each.stop)
        await async_wait_for(lambda: service.scans == 1, 30, 0.05, "the first registry listing")
        yield service


@pytest.fixture
async def catalog_view(hook_settings: ModelbusSettings) -> AsyncIterator[CatalogView]:
    view = CatalogView(hook_settings.kafka_bootstrap_servers, hook_settings.topics.catalog)
    await view.start()
    yield view
    await view.stop()


async def discovered(settings: ModelbusSettings) -> list[DiscoveryEvent]:
    records = await read_topic(settings.kafka_bootstrap_servers, settings.topics.discovered)
    return [DiscoveryEvent.model_validate_json(r.value) for r in records]


async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session, session.post(
        url, data=body, headers=headers
    ) as response:
        return response.status


def signed(body: bytes, secret: str, age_s: int = 0) -> dict[str, str]:
    delivery, ts = str(uuid.uuid4()), str(int(time.time()) - age_s)
    return {"X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": ts,
            "X-MLflow-Signature": sign(secret, delivery, ts, body),
            "Content-Type": "application/json"}


async def test_registered_version_reaches_the_catalog_well_inside_one_poll(
    discovery: DiscoveryService,
    catalog_view: CatalogView,
    client: MlflowClient,
    logged_model: LoggedModel,
    model_name: str,
    hook_settings: ModelbusSettings,
) -> None:
    started = time.monotonic()
    version = register(client, model_name, logged_model, model_tags={"datagrok": ""})
    key = f"{model_name}/{version}"
    assert await catalog_view.wait_until(lambda entries: key in entries, 10), (
        "no catalog entry within 10 s although a poll is 300 s away"
    )
    latency = time.monotonic() - started
    assert catalog_view.entries[key].status == "ready"
    assert discovery.scans == 1  # no poll came in between: the webhook did it
    events = await discovered(hook_settings)
    assert [(e.kind, e.key) for e in events] == [("found", key)]
    print(f"register -> catalog entry by webhook: {latency:.2f} s")


async def test_version_tag_set_and_deleted_are_discovered_at_once(
    discovery: DiscoveryService,
    client: MlflowClient,
    logged_model: LoggedModel,
    model_name: str,
    hook_settings: ModelbusSettings,
) -> None:
    version = register(client, model_name, logged_model)  # untagged: nothing to announce
    await async_wait_for(lambda: discovery.model_scans == 1, 10, 0.05, "the rescan of creation")
    assert await discovered(hook_settings) == []
    key = f"{model_name}/{version}"

    started = time.monotonic()
    client.set_model_version_tag(model_name, version, "datagrok", "")
    records = await read_topic(hook_settings.kafka_bootstrap_servers,
                               hook_settings.topics.discovered, lambda rs: len(rs) >= 1, 10)
    latency = time.monotonic() - started
    client.delete_model_version_tag(model_name, version, "datagrok")
    await read_topic(hook_settings.kafka_bootstrap_servers,
                     hook_settings.topics.discovered, lambda rs: len(rs) >= 2, 10)

    events = await discovered(hook_settings)
    assert [(e.kind, e.key) for e in events] == [("found", key), ("removed", key)]
    assert DiscoveryEvent.model_validate_json(records[0].value).version_tags == {"datagrok": ""}
    assert (discovery.scans, discovery.model_scans) == (1, 3)
    print(f"set version tag -> discovery event by webhook: {latency:.2f} s")


async def test_forged_and_unsigned_calls_change_nothing_and_are_logged(
    discovery: DiscoveryService,
    client: MlflowClient,
    logged_model: LoggedModel,
    model_name: str,
    hook_settings: ModelbusSettings,
    receiver_url: str,
) -> None:
    version = register(client, model_name, logged_model)
    await async_wait_for(lambda: discovery.model_scans == 1, 10, 0.05, "the rescan of creation")
    # A registered-model tag fires no webhook: only a rescan of the model would find it.
    client.set_registered_model_tag(model_name, "datagrok", "")
    body = json.dumps({"entity": "model_version", "action": "created", "timestamp": "now",
                       "data": {"name": model_name, "version": version}}).encode()

    with capture_logs() as logs:
        forged = await post(receiver_url, body, signed(body, "not-the-secret"))
        unsigned = await post(receiver_url, body, {"Content-Type": "application/json"})
        replayed = await post(receiver_url, body, signed(body, SECRET, age_s=3600))
    assert (forged, unsigned, replayed) == (401, 401, 401)
    rejected: list[dict[str, Any]] = [e for e in logs if e["event"] == "webhook_rejected"]
    assert [(e["log_level"], e["reason"]) for e in rejected] == [
        ("warning", "bad_signature"), ("warning", "missing_signature_headers"),
        ("warning", "stale_timestamp"),
    ]
    assert SECRET not in repr(logs)
    assert discovery.model_scans == 1
    assert await discovered(hook_settings) == []

    # The same call signed with the secret is what MLflow would send: now it counts.
    assert await post(receiver_url, body, signed(body, SECRET)) == 202
    records = await read_topic(hook_settings.kafka_bootstrap_servers,
                               hook_settings.topics.discovered, lambda rs: len(rs) >= 1, 10)
    assert [r.key for r in records] == [f"{model_name}/{version}".encode()]
    assert (discovery.scans, discovery.model_scans) == (1, 2)


async def test_bodies_over_the_limit_are_refused(
    discovery: DiscoveryService, receiver_url: str
) -> None:
    body = b"x" * (256 * 1024 + 1)
    assert await post(receiver_url, body, signed(body, SECRET)) == 413
    assert discovery.model_scans == 0

