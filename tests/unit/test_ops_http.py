"""The operations endpoint on a real socket: metrics text, health, readiness, bad requests."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from modelbus_delivery.ops_http import OpsServer, Readiness


class Switch:
    """A readiness check whose answer the test sets, counting its calls."""

    def __init__(self, value: bool = True) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.value


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter("demo_things", "Things.", ["kind"], registry=registry)
    counter.labels("a").inc(3)
    return registry


@pytest.fixture
def kafka() -> Switch:
    return Switch()


@pytest.fixture
def server(registry: CollectorRegistry, kafka: Switch) -> Iterator[OpsServer]:
    ops = OpsServer(registry, Readiness({"kafka": kafka}, cache_s=0.0), host="127.0.0.1")
    ops.start()
    yield ops
    ops.stop()


def _get(server: OpsServer, path: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def _raw(server: OpsServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_metrics_are_the_registry_in_the_text_format(server: OpsServer) -> None:
    code, content_type, body = _get(server, "/metrics")
    assert code == 200
    assert content_type.startswith("text/plain; version=")
    samples = [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(body) for s in family.samples
        if s.name == "demo_things_total"
    ]
    assert samples == [("demo_things_total", {"kind": "a"}, 3.0)]


def test_metrics_are_refreshed_before_each_scrape(registry: CollectorRegistry) -> None:
    refreshed: list[int] = []
    ops = OpsServer(registry, Readiness({}), host="127.0.0.1",
                    refresh=lambda: refreshed.append(1))
    ops.start()
    try:
        assert _get(ops, "/metrics")[0] == 200
        assert _get(ops, "/metrics")[0] == 200
        assert _get(ops, "/healthz")[0] == 200
    finally:
        ops.stop()
    assert refreshed == [1, 1]


def test_a_failing_refresh_still_serves_the_metrics(registry: CollectorRegistry) -> None:
    def broken() -> None:
        raise TimeoutError("the event loop did not answer")

    ops = OpsServer(registry, Readiness({}), host="127.0.0.1", refresh=broken)
    ops.start()
    try:
        code, _, body = _get(ops, "/metrics")
    finally:
        ops.stop()
    assert code == 200
    assert 'demo_things_total{kind="a"} 3.0' in body


def test_healthz_answers_while_the_process_serves(server: OpsServer, kafka: Switch) -> None:
    kafka.value = False  # health is not readiness
    assert _get(server, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")


def test_readyz_is_200_when_every_check_passes_and_503_otherwise(
    server: OpsServer, kafka: Switch
) -> None:
    code, content_type, body = _get(server, "/readyz")
    assert (code, content_type) == (200, "application/json")
    assert json.loads(body) == {"ready": True, "checks": {"kafka": True}}
    kafka.value = False
    code, _, body = _get(server, "/readyz")
    assert code == 503
    assert json.loads(body) == {"ready": False, "checks": {"kafka": False}}


def test_a_check_that_raises_fails(registry: CollectorRegistry) -> None:
    def broken() -> bool:
        raise ConnectionError("docker engine gone")

    ops = OpsServer(registry, Readiness({"docker": broken, "kafka": Switch()}),
                    host="127.0.0.1")
    ops.start()
    try:
        code, _, body = _get(ops, "/readyz")
    finally:
        ops.stop()
    assert code == 503
    assert json.loads(body) == {"ready": False, "checks": {"docker": False, "kafka": True}}


def test_readiness_runs_each_check_once_per_cache_period() -> None:
    now = [100.0]
    check = Switch()
    readiness = Readiness({"kafka": check}, cache_s=1.0, clock=lambda: now[0])
    assert readiness.status() == {"kafka": True}
    check.value = False
    now[0] += 0.5
    assert readiness.status() == {"kafka": True}  # cached
    now[0] += 0.5
    assert readiness.status() == {"kafka": False}
    assert check.calls == 2


def test_an_unknown_path_is_404(server: OpsServer) -> None:
    code, _, body = _get(server, "/admin")
    assert code == 404
    assert body == "not found: try /metrics, /healthz or /readyz\n"


def test_other_methods_are_refused(server: OpsServer) -> None:
    assert _raw(server, b"POST /metrics HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 501 ")


def test_garbage_and_oversized_requests_are_refused_and_the_server_goes_on(
    server: OpsServer,
) -> None:
    assert _raw(server, b"\x00\xff garbage\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    assert _raw(server, b"GET /metrics HTTP/9.9 extra\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    oversized = b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n"
    assert _raw(server, oversized).startswith(b"HTTP/1.0 414 ")
    assert _get(server, "/healthz")[0] == 200


def test_a_taken_port_is_an_os_error(registry: CollectorRegistry) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ops = OpsServer(registry, Readiness({}), host="127.0.0.1",
                        port=taken.getsockname()[1])
        with pytest.raises(OSError):
            ops.start()


def _ready_samples(server: OpsServer) -> dict[str, float]:
    _, _, body = _get(server, "/metrics")
    return {
        s.labels["check"]: s.value
        for family in text_string_to_metric_families(body) for s in family.samples
        if s.name == "modelbus_ready"
    }


def test_metrics_carry_each_readiness_check_as_1_or_0(
    server: OpsServer, kafka: Switch
) -> None:
    assert _ready_samples(server) == {"kafka": 1.0}
    kafka.value = False
    assert _ready_samples(server) == {"kafka": 0.0}
    assert _get(server, "/readyz")[0] == 503


def test_the_readiness_gauge_leaves_the_registry_when_the_server_stops(
    registry: CollectorRegistry,
) -> None:
    for _ in range(2):  # a second endpoint on the same registry: no duplicate series
        ops = OpsServer(registry, Readiness({"docker": Switch(False)}), host="127.0.0.1")
        ops.start()
        try:
            assert _ready_samples(ops) == {"docker": 0.0}
        finally:
            ops.stop()
        assert registry.get_sample_value("modelbus_ready", {"check": "docker"}) is None
