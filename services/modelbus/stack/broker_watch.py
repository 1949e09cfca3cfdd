"""``modelbus up`` watches its embedded broker: a probe every few seconds, warnings, metrics.

Each look times one fetch of every partition holding records (``broker_probe``) and reads
the broker process's resident memory; ``BrokerWatchPolicy`` decides what to tell. A
notice is a JSON log event and, for a person at the terminal, one line on stderr. The
gauges live in the stack's own registry, served on the port after the services' ones.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from prometheus_client import CollectorRegistry, Gauge

from modelbus.stack.broker import EmbeddedBroker
from modelbus.stack.broker_probe import ProbeError, slowest_fetch
from modelbus.stack.broker_watch_policy import (
    BrokerLimits,
    BrokerReading,
    BrokerWatchPolicy,
    Notice,
)
from modelbus.stack.errors import PortInUseError
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.fetch_pacing import FetchPacing
from modelbus_delivery.logs import get_logger
from modelbus_delivery.ops_http import OpsServer, Readiness

log = get_logger("stack")

PROBE_TIMEOUT_S = 5.0


def limits_from(settings: ModelbusSettings) -> BrokerLimits:
    """The wall is the request path's fetch wait under load (the busy wait when fetches are
    paced); the warning comes at the configured share."""
    pacing = FetchPacing.request_path(settings)
    wall_s = (pacing.busy_ms if pacing.enabled else pacing.quiet_ms) / 1000
    warn_ms = settings.embedded_broker_fetch_warn_ms
    return BrokerLimits(
        fetch_wall_s=wall_s,
        fetch_warn_s=wall_s / 2 if warn_ms is None else warn_ms / 1000,
        memory_warn_bytes=settings.embedded_broker_memory_warn_mb * 1_000_000,
    )


def resident_bytes(pid: int) -> int | None:
    """The resident memory of process ``pid`` (None: gone or unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class BrokerWatchMetrics:
    """The watch's gauges, in the stack's own registry."""

    def __init__(self, limits: BrokerLimits, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry or CollectorRegistry()
        self.fetch_seconds = Gauge(
            "modelbus_embedded_broker_fetch_seconds",
            "The embedded broker's slowest fetch of a partition holding records, at the "
            "last look (it grows with the partition's record batches).",
            registry=registry,
        )
        self.fetch_wall = Gauge(
            "modelbus_embedded_broker_fetch_wall_seconds",
            "The request path's fetch wait under load: past it, answers stall.",
            registry=registry,
        )
        self.fetch_wall.set(limits.fetch_wall_s)
        self.resident = Gauge(
            "modelbus_embedded_broker_resident_bytes",
            "Resident memory of the embedded broker process (it keeps every record).",
            registry=registry,
        )
        self.warning = Gauge(
            "modelbus_embedded_broker_warning",
            "1 while the stack warns about its embedded broker: fetch (slowing down or at its "
            "limit) or memory (past MODELBUS_EMBEDDED_BROKER_MEMORY_WARN_MB).",
            ["cause"], registry=registry,
        )
        for cause in ("fetch", "memory"):
            self.warning.labels(cause).set(0)

    def show(self, reading: BrokerReading, warnings: dict[str, bool]) -> None:
        if reading.fetch_s is not None:
            self.fetch_seconds.set(reading.fetch_s)
        if reading.rss_bytes is not None:
            self.resident.set(reading.rss_bytes)
        for cause, on in warnings.items():
            self.warning.labels(cause).set(1 if on else 0)


class BrokerWatch:
    """Looks at the broker every ``interval_s`` in a daemon thread until ``stop``."""

    def __init__(
        self,
        host: str,
        port: int,
        pid: Callable[[], int | None],
        limits: BrokerLimits,
        interval_s: float,
        *,
        out: TextIO | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.host, self.port, self._pid = host, port, pid
        self.interval_s = interval_s
        self.policy = BrokerWatchPolicy(limits)
        self.metrics = BrokerWatchMetrics(limits, registry)
        self._out = out
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.probe_ok = False
        self.server: OpsServer | None = None  # the metrics endpoint, when one is served

    def look(self) -> list[Notice]:
        """One look: read, decide, show and tell; the notices it gave."""
        reading = self.read()
        notices = self.policy.observe(reading)
        self.metrics.show(reading, self.policy.warnings())
        for notice in notices:
            self.tell(notice)
        return notices

    def read(self) -> BrokerReading:
        pid = self._pid()
        rss = resident_bytes(pid) if pid is not None else None
        try:
            slowest = slowest_fetch(self.host, self.port, timeout_s=PROBE_TIMEOUT_S)
        except ProbeError as exc:
            self.probe_ok = False
            log.debug("embedded_broker_probe_failed", error=str(exc)[:300])
            return BrokerReading(rss_bytes=rss)
        self.probe_ok = True
        if slowest is None:  # no partition holds a record yet
            return BrokerReading(fetch_s=0.0, rss_bytes=rss)
        return BrokerReading(slowest.seconds, f"{slowest.topic}[{slowest.partition}]", rss)

    def tell(self, notice: Notice) -> None:
        emit = log.warning if notice.warning else log.info
        emit(notice.event, cause=notice.cause, **notice.fields)
        out = self._out or sys.stderr
        print(f"modelbus up: {'warning' if notice.warning else 'note'}: {notice.text}",
              file=out, flush=True)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelbus-broker-watch",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.look()
            except Exception:  # the watch never takes the stack down
                log.exception("embedded_broker_watch_failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=PROBE_TIMEOUT_S + 1)
            self._thread = None
        server, self.server = self.server, None
        if server is not None:
            server.stop()


def start_broker_watch(
    broker: EmbeddedBroker, settings: ModelbusSettings, *, host: str, metrics_port: int
) -> BrokerWatch:
    """Watch ``broker`` (its current process, across restarts) every
    ``embedded_broker_watch_s``; its metrics on ``host:metrics_port`` unless that is 0."""
    watch = BrokerWatch(
        broker.advertised_host, broker.port,
        lambda: broker.process.pid if broker.process is not None else None,
        limits_from(settings), settings.embedded_broker_watch_s,
    )
    if metrics_port:
        server = OpsServer(watch.metrics.registry, Readiness({"kafka": lambda: watch.probe_ok}),
                           host=host, port=metrics_port)
        try:
            server.start()
        except OSError:
            raise PortInUseError("kafka metrics", host, metrics_port) from None
        watch.server = server
    watch.start()
    return watch
