"""The operations endpoints of a running ``modelbus up`` (the package's ``stack``, in
conftest.py): scraped after known requests, and readiness while the embedded broker is
frozen and after it is back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.error
import urllib.request
import uuid

import pyarrow as pa
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from tests.stack.test_recovery import _child_pid
from tests.support.echo_model import FRAME
from tests.support.up_stack import SERVICES, Stack
from tests.support.waiting import wait_for

from modelbus.client import ModelbusClient
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.errors import ModelbusError

pytestmark = pytest.mark.integration

REQUESTS_TOPIC = "modelbus.inference.requests"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _scrape(port: int) -> Samples:
    code, text = _get(port, "/metrics")
    assert code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _delta(before: Samples, after: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The series of ``name`` that changed, by how much."""
    keys = {labels for n, labels in (*before, *after) if n == name}
    changes = {k: after.get((name, k), 0.0) - before.get((name, k), 0.0) for k in keys}
    return {k: v for k, v in changes.items() if v}


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def _answered(**labels: str) -> frozenset[tuple[str, str]]:
    """The labels of a request read from the interactive lane (what clients send by default)."""
    return _labels(lane="interactive", **labels)


async def _send_raw_requests(bootstrap: str, model: str, count: int) -> None:
    """Requests the client would never send: a content type the worker refuses."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(
                REQUESTS_TOPIC, to_ipc_stream(pa.Table.from_pandas(FRAME, preserve_index=False)),
                key=f"raw-{i}".encode(),
                headers=[("model", model.encode()), ("content-type", b"text/csv")],
            )
    finally:
        await producer.stop()


def _expect_error(client: ModelbusClient, code: str, name: str, version: str | None) -> None:
    with pytest.raises(ModelbusError) as raised:
        client.predict(name, FRAME, version=version, timeout=30)
    assert raised.value.code == code


def test_scraped_counts_and_labels_match_the_requests_sent(stack: Stack) -> None:
    worker = stack.ports["worker"]
    before = _scrape(worker)
    with ModelbusClient(stack.bootstrap) as client:
        for _ in range(3):
            client.predict(stack.model, FRAME, timeout=30)
        for _ in range(2):  # names nobody registered are counted as "_unknown"
            _expect_error(client, "model_not_found", f"no-such-{uuid.uuid4().hex[:8]}", None)
        _expect_error(client, "model_not_found", stack.model, "7")
    asyncio.run(_send_raw_requests(stack.bootstrap, stack.model, 2))
    bad = ("modelbus_requests_total", _answered(model=stack.model, version="", status="error",
                                              error_code="bad_request"))
    wait_for(lambda: _scrape(worker).get(bad, 0.0) - before.get(bad, 0.0) == 2, 30,
             message="two bad requests counted")
    after = _scrape(worker)

    assert _delta(before, after, "modelbus_requests_total") == {
        _answered(model=stack.model, version="1", status="ok", error_code=""): 3,
        _answered(model="_unknown", version="", status="error", error_code="model_not_found"): 2,
        _answered(model=stack.model, version="", status="error", error_code="model_not_found"): 1,
        _answered(model=stack.model, version="", status="error", error_code="bad_request"): 2,
    }
    ok = _labels(model=stack.model, version="1", lane="interactive")
    batches = _labels(model=stack.model, version="1")
    assert _delta(before, after, "modelbus_request_predict_duration_seconds_count") == {ok: 3}
    assert _delta(before, after, "modelbus_batch_rows_count") == {batches: 3}
    assert _delta(before, after, "modelbus_batch_rows_sum") == {batches: 3 * len(FRAME)}
    duration = _delta(before, after, "modelbus_request_duration_seconds_count")
    assert duration[ok] == 3
    assert sum(duration.values()) == 8
    # The one cold start of the fixture: one warm container, no other start.
    model = {"model": stack.model, "version": "1"}
    assert _value(after, "modelbus_container_starts_total", **model, result="ok") == 1
    assert _value(after, "modelbus_container_starts_total", **model, result="error") == 0
    assert _value(after, "modelbus_cold_start_seconds_count", **model) == 1
    assert _value(after, "modelbus_containers", state="warm") == 1
    assert _value(after, "modelbus_containers", state="starting") == 0
    # A request counts as answered when its answer is made, and leaves the in-flight gauge
    # once the answer (and, for a bad request, its DLQ copy) is published.
    wait_for(lambda: _value(_scrape(worker), "modelbus_in_flight_requests",
                                lane="interactive") == 0, 30,
             message="no request in flight once every answer is published")

    def lag_settled() -> dict[tuple[str, str], float] | None:
        lag = {
            (dict(labels)["lane"], dict(labels)["partition"]): value
            for (name, labels), value in _scrape(worker).items()
            if name == "modelbus_consumer_lag"
        }
        return lag if len(lag) == 24 and not any(lag.values()) else None

    lag = wait_for(lag_settled, 30, message="every partition of both lanes assigned, caught up")
    assert sorted(lag) == sorted((lane, str(p)) for lane in ("bulk", "interactive")
                                 for p in range(12))

    discovery = _scrape(stack.ports["discovery"])
    assert _value(discovery, "modelbus_models_discovered") == 1
    scans = {r: _value(discovery, "modelbus_registry_scans_total", result=r)
             for r in ("ok", "registry_error", "publish_error")}
    assert scans["ok"] >= 1
    assert (scans["registry_error"], scans["publish_error"]) == (0, 0)
    assert _value(discovery, "modelbus_registry_scan_seconds_count") == sum(scans.values())
    catalog = _scrape(stack.ports["catalog"])
    assert _value(catalog, "modelbus_catalog_entries", status="ready") == 1
    assert _value(catalog, "modelbus_catalog_entries", status="invalid") == 0


def test_health_and_readiness_of_every_service(stack: Stack) -> None:
    expected = {
        "discovery": {"kafka": True, "mlflow": True},
        "catalog": {"kafka": True, "mlflow": True},
        "worker": {"docker": True, "kafka": True},
        "gateway": {"http": True, "kafka": True},
    }
    for service, port in stack.ports.items():
        assert _get(port, "/healthz") == (200, "ok\n")
        code, body = _get(port, "/readyz")
        assert (code, json.loads(body)) == (200, {"ready": True, "checks": expected[service]})
        assert _get(port, "/nothing-here")[0] == 404


def test_readyz_is_503_while_the_broker_is_unreachable_and_200_once_it_is_back(
    stack: Stack,
) -> None:
    broker = _child_pid(stack.up, b"broker", b"--storage-engine")

    def readiness() -> dict[str, tuple[int, bool]]:
        states = {}
        for service, port in stack.ports.items():
            code, body = _get(port, "/readyz")
            states[service] = (code, json.loads(body)["checks"]["kafka"])
        return states

    os.kill(broker, signal.SIGSTOP)  # frozen: connections hang, nothing answers
    try:
        down = {service: (503, False) for service in SERVICES}
        wait_for(lambda: readiness() == down, 15, interval=0.5,
                 message="every service not ready while the broker is frozen")
    finally:
        os.kill(broker, signal.SIGCONT)
    up = {service: (200, True) for service in SERVICES}
    wait_for(lambda: readiness() == up, 60, interval=0.5,
             message="every service ready again once the broker answers")
    for port in stack.ports.values():
        assert _get(port, "/healthz") == (200, "ok\n")
    assert stack.up.uncaught_tracebacks() == []
