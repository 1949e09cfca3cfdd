"""A service's operations endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` over HTTP.

- ``/metrics``: the service's own Prometheus registry in the text format (OpenMetrics when
  the scraper asks for it), with ``modelbus_ready{check}`` (1 or 0: each readiness check,
  as ``/readyz`` tells it) while the endpoint serves. Values that live in the event loop
  (gauges such as the consumer lag) are refreshed on the loop first, bounded by
  ``REFRESH_TIMEOUT_S``.
- ``/healthz``: 200 while the process serves HTTP at all.
- ``/readyz``: the service's named checks (``kafka``, ``mlflow``, ``docker``) as JSON, 200
  when all pass and 503 otherwise; results are cached for ``Readiness.cache_s``.

The server is the standard library's, in daemon threads: a check that blocks (a Docker
ping) never blocks the event loop, and a slow client holds one thread for at most
``REQUEST_TIMEOUT_S``. Only GET is served; request lines and headers are bounded by the
standard library (an oversized request line is answered 414, a malformed one 400).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .logs import get_logger

log = get_logger("ops_http")

Check = Callable[[], bool]
REFRESH_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 5.0
# Kafka counts as ready while the service's topic guard (checking every second) reached
# the broker this recently.
KAFKA_SEEN_WITHIN_S = 5.0


class OpsPortUnavailable(Exception):
    """The endpoint's port cannot be bound (taken, or not allowed)."""


class OpsSource(Protocol):
    """What a service offers its operations endpoint."""

    @property
    def registry(self) -> CollectorRegistry: ...

    def readiness_checks(self) -> dict[str, Check]: ...

    async def refresh_metrics(self) -> None: ...


class BrokerWatch(Protocol):
    """What tells whether the broker was reached lately (a service's ``TopicGuard``)."""

    def broker_seen_within(self, seconds: float) -> bool: ...


class Readiness:
    """Named checks, each run at most once per ``cache_s``; a check that raises fails."""

    def __init__(
        self, checks: Mapping[str, Check], cache_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = dict(checks)
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[str, bool] | None = None
        self._at = 0.0

    def status(self) -> dict[str, bool]:
        """Each check's result (cached)."""
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._at >= self.cache_s:
                self._cached = {name: _passes(check) for name, check in self._checks.items()}
                self._at = now
            return dict(self._cached)


class ReadinessCollector(Collector):
    """``modelbus_ready{check}``: 1 while a readiness check passes, 0 while it fails, so that
    an alert sees a service that runs but is not ready (``up`` only sees the process)."""

    def __init__(self, readiness: Readiness) -> None:
        self._readiness = readiness

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "modelbus_ready", "1 while the readiness check passes (as /readyz tells), else 0.",
            labels=["check"],
        )
        for check, passes in sorted(self._readiness.status().items()):
            family.add_metric([check], 1.0 if passes else 0.0)
        yield family


def kafka_ready(guard: BrokerWatch | None, consuming: bool = True) -> bool:
    """The ``kafka`` check: the broker was reached lately and the service's loop runs."""
    return guard is not None and guard.broker_seen_within(KAFKA_SEEN_WITHIN_S) and consuming


def _passes(check: Check) -> bool:
    try:
        return bool(check())
    except Exception as exc:
        log.debug("readiness_check_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return False


class OpsServer:
    """The endpoint on ``host:port`` (port 0: one the kernel picks, see ``port``)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self.refresh = refresh
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._collector: ReadinessCollector | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind (OSError when the port is taken) and serve in a daemon thread."""
        server = _Server(self._address, _OpsHandler)
        server.ops = self
        self._server = server
        self._collector = ReadinessCollector(self.readiness)
        self.registry.register(self._collector)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2},
            name="modelbus-ops-http", daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        collector, self._collector = self._collector, None
        if collector is not None:
            self.registry.unregister(collector)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    ops: OpsServer


class _OpsHandler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_S  # a client that sends nothing is dropped
    server_version = "modelbus-ops"
    default_request_version = "HTTP/1.0"  # a garbled request line still gets a status line

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            checks = self.server.ops.readiness.status()
            ready = all(checks.values())
            body = json.dumps({"ready": ready, "checks": checks}, sort_keys=True).encode()
            self._send(200 if ready else 503, body + b"\n", "application/json")
        else:
            self._send(404, b"not found: try /metrics, /healthz or /readyz\n",
                       "text/plain; charset=utf-8")

    def _metrics(self) -> None:
        ops = self.server.ops
        if ops.refresh is not None:
            try:
                ops.refresh()
            except Exception as exc:  # serve what is there: a scrape never fails for this
                log.warning("metrics_refresh_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        encoder, content_type = choose_encoder(self.headers.get("Accept") or "")
        self._send(200, encoder(ops.registry), content_type)

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: scrapes every few seconds would drown the service's own lines."""


def refresher(
    loop: asyncio.AbstractEventLoop, refresh: Callable[[], Coroutine[Any, Any, None]],
    timeout_s: float = REFRESH_TIMEOUT_S,
) -> Callable[[], None]:
    """A blocking call (for the HTTP threads) that runs ``refresh()`` on ``loop``."""

    def run() -> None:
        asyncio.run_coroutine_threadsafe(refresh(), loop).result(timeout_s)

    return run


@contextlib.asynccontextmanager
async def ops_endpoint(
    source: OpsSource, host: str, port: int, service: str
) -> AsyncIterator[OpsServer | None]:
    """Serve ``source``'s endpoint on ``host:port`` while the block runs (port 0: none)."""
    if port == 0:
        yield None
        return
    server = OpsServer(
        source.registry, Readiness(source.readiness_checks()), host=host, port=port,
        refresh=refresher(asyncio.get_running_loop(), source.refresh_metrics),
    )
    try:
        server.start()
    except OSError as exc:
        raise OpsPortUnavailable(
            f"the metrics endpoint cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    log.info("metrics_endpoint_started", service=service, host=host, port=server.port)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
