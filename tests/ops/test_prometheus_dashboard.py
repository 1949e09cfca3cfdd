"""A real Prometheus (Debian's package) scrapes a running ``modelbus up`` (the package's
``stack``, with its HTTP gateway) with the alert rules of ``deploy/prometheus`` loaded: after
requests through Kafka and through the gateway, every expression of the rules and of the
Grafana dashboard is accepted by its query API, the key panels (requests/s, p50, errors by
code, lag, containers, batch sizes; the gateway's requests/s by status class, p50, p99 and in
flight) return data about those requests, every rule evaluates without error and none fires
on the healthy stack."""

from __future__ import annotations

import json
import math
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.echo_model import FRAME
from tests.support.observability import ALERTS, Query, dashboard_queries, rule_queries, tool
from tests.support.up_stack import SERVICES, Stack
from tests.support.waiting import wait_for

from modelbus.client import ModelbusClient
from modelbus.stack import free_tcp_port
from modelbus_contract.errors import ModelbusError

pytestmark = pytest.mark.integration

REQUESTS_TOPIC = "modelbus.inference.requests"
BULK_TOPIC = "modelbus.inference.requests.bulk"
Series = list[dict[str, Any]]


class PrometheusProcess:
    """``prometheus`` on a loopback port, its configuration and storage in ``home``."""

    def __init__(self, home: Path, targets: dict[str, int]) -> None:
        self.port = free_tcp_port()
        self.log = home / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{
                "job_name": "modelbus",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"component": name}}
                    for name, port in targets.items()
                ],
            }],
        }
        (home / "prometheus.yml").write_text(yaml.safe_dump(config))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [tool("prometheus"), f"--config.file={home / 'prometheus.yml'}",
                 f"--storage.tsdb.path={home / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def get(self, path: str, **params: str) -> tuple[int, dict[str, Any]]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://127.0.0.1:{self.port}{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def query(self, expr: str) -> tuple[int, dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)

    def series(self, expr: str) -> Series:
        code, body = self.query(expr)
        assert (code, body.get("status")) == (200, "success"), (expr, body)
        result: Series = body["data"]["result"]
        return result

    def ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited:\n{self.log.read_text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[PrometheusProcess]:
    server = PrometheusProcess(tmp_path, {s: stack.ports[s] for s in SERVICES})
    try:
        wait_for(server.ready, 60, interval=0.2, message="prometheus ready")
        yield server
    finally:
        server.stop()


def _values(series: Series) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s["metric"].items()): float(s["value"][1]) for s in series}


def _send(stack: Stack, ok: int, unknown: int) -> None:
    with ModelbusClient(stack.bootstrap) as client:
        for _ in range(ok):
            client.predict(stack.model, FRAME, timeout=30)
        for _ in range(unknown):
            with pytest.raises(ModelbusError) as raised:
                client.predict(f"no-such-{uuid.uuid4().hex[:8]}", FRAME, timeout=30)
            assert raised.value.code == "model_not_found"


def _post_http(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _send_http(stack: Stack, ok: int, unknown: int) -> None:
    """Through the gateway (MLflow's scoring protocol): ``ok`` answered requests, ``unknown``
    ones for a model the catalog does not know (404)."""
    body = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}).encode()
    for _ in range(ok):
        assert _post_http(f"{stack.gateway_url}/models/{stack.model}/invocations", body) == 200
    for _ in range(unknown):
        missing = f"no-such-{uuid.uuid4().hex[:8]}"
        assert _post_http(f"{stack.gateway_url}/models/{missing}/invocations", body) == 404


def _by_where(queries: list[Query], where: str) -> str:
    (expr,) = [q.expr for q in queries if q.where == where]
    return expr


def test_prometheus_scrapes_the_stack_and_every_rule_and_panel_query_works(
    stack: Stack, prometheus: PrometheusProcess
) -> None:
    def targets_up() -> bool:
        _, body = prometheus.get("/api/v1/targets")
        active = body["data"]["activeTargets"]
        return len(active) == len(SERVICES) and all(t["health"] == "up" for t in active)

    wait_for(targets_up, 30, interval=0.5, message="every service's ops port scraped")
    # A series counts from its first scrape on: the error series of an unknown model is
    # made first, scraped, then counted up, so that its rate is not 0.
    _send(stack, ok=1, unknown=1)
    _send_http(stack, ok=1, unknown=1)
    wait_for(lambda: prometheus.series('modelbus_requests_total{model="_unknown"}'), 15,
             interval=0.2, message="the first error answer scraped")
    wait_for(lambda: prometheus.series('modelbus_gateway_requests_total{status="404"}'), 15,
             interval=0.2, message="the gateway's first 404 scraped")
    _send(stack, ok=5, unknown=2)
    _send_http(stack, ok=5, unknown=2)

    panels = dashboard_queries()
    model = stack.model

    def positive(where: str, **labels: str) -> float | None:
        values = _values(prometheus.series(_by_where(panels, where)))
        found = [v for k, v in values.items() if set(labels.items()) <= k]
        return found[0] if found and math.isfinite(found[0]) and found[0] > 0 else None

    key = {
        "requests/s": ("panel 'Requests/s by model' A", {"model": model}),
        "p50": ("panel 'Latency p50 and p99 by model and lane' A",
                {"model": model, "lane": "interactive"}),
        "p99": ("panel 'Latency p50 and p99 by model and lane' B",
                {"model": model, "lane": "interactive"}),
        "errors by code": ("panel 'Errors/s by code' A", {"error_code": "model_not_found"}),
        "batch size p50": ("panel 'Batch sizes p50 and p99 by model' A", {"model": model}),
        "containers": ("panel 'Containers by state' A", {"state": "warm"}),
        "gateway 2xx/s": ("panel 'Gateway requests/s by status class' A", {}),
        "gateway 4xx/s": ("panel 'Gateway requests/s by status class' B", {}),
        "gateway p50": ("panel 'Gateway latency p50 and p99 by protocol' A",
                        {"protocol": "mlflow"}),
        "gateway p99": ("panel 'Gateway latency p50 and p99 by protocol' B",
                        {"protocol": "mlflow"}),
    }

    def key_panels() -> dict[str, float] | None:
        values = {name: positive(where, **labels) for name, (where, labels) in key.items()}
        shown = {name: v for name, v in values.items() if v is not None}
        return shown if len(shown) == len(key) else None

    got = wait_for(key_panels, 30, interval=0.5, message="the key panels show the requests")
    assert got["containers"] == 1
    assert got["batch size p50"] >= 1
    # The gateway: nothing in flight between requests, no 5xx and no refusal on a healthy
    # stack (the queries answer, with no series).
    in_flight = _by_where(panels, "panel 'Gateway requests in flight' A")
    assert _values(prometheus.series(in_flight)) == {
        frozenset({("instance", f"127.0.0.1:{stack.ports['gateway']}")}): 0.0}
    for where in ("panel 'Gateway requests/s by status class' C",
                  "panel 'Gateway 429s and 5xx/s' A", "panel 'Gateway 429s and 5xx/s' B"):
        assert prometheus.series(_by_where(panels, where)) == [], where
    # Lag: the requests topics' (both lanes), caught up once every answer is committed (0
    # is data too).
    lag_by_topic = _by_where(panels, "panel 'Consumer lag' A")
    wait_for(lambda: _values(prometheus.series(lag_by_topic))
             == {frozenset({("topic", t)}): 0.0 for t in (REQUESTS_TOPIC, BULK_TOPIC)},
             15, interval=0.5, message="the lag panel shows the requests topics caught up")
    ready = _values(prometheus.series("min by (component) (modelbus_ready)"))
    assert ready == {frozenset({("component", s)}): 1.0 for s in SERVICES}
    # The worker polls all the time; the worker and the catalog count dead letters.
    polled = _values(prometheus.series(
        _by_where(panels, """panel "Seconds since each consumer's last poll" A""")))
    assert list(polled) == [
        frozenset({("job", "modelbus"), ("component", "worker"),
                   ("instance", f"127.0.0.1:{stack.ports['worker']}")})]
    assert 0 <= next(iter(polled.values())) < 10
    dead = prometheus.series('count by (component) (modelbus_dlq_records_total)')
    assert {s["metric"]["component"] for s in dead} == {"worker", "catalog"}

    # Every expression: accepted and evaluated by the query API.
    refused = []
    for query in (*rule_queries(), *panels):
        code, body = prometheus.query(query.expr)
        if code != 200 or body.get("status") != "success":
            refused.append(f"{query.where}: {code} {body.get('error')}")
    assert refused == []

    # The rules as Prometheus evaluates them: no error, and nothing fires on a healthy stack.
    def evaluated() -> list[dict[str, Any]] | None:
        _, body = prometheus.get("/api/v1/rules")
        rules = [r for g in body["data"]["groups"] for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("2")
                                      and not r["lastEvaluation"].startswith("0001")
                                      for r in rules) else None

    rules = wait_for(evaluated, 15, interval=0.5, message="every rule evaluated")
    assert {r["name"]: r["health"] for r in rules} == {
        q.where.removeprefix("alert "): "ok" for q in rule_queries()
    }
    assert [r["name"] for r in rules if r["state"] == "firing"] == []
    assert stack.up.uncaught_tracebacks() == []
