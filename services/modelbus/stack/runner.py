"""``run_stack``: the whole modelbus stack on one machine, in the foreground."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from modelbus.stack.broker import EmbeddedBroker, kafka_api_versions_ok
from modelbus.stack.broker_binary import resolve_broker_binary
from modelbus.stack.errors import PortInUseError, StackError, StartupError
from modelbus.stack.mlflow_server import EmbeddedMlflow, mlflow_healthy
from modelbus.stack.ports import port_in_use
from modelbus.stack.process import ChildProcess
from modelbus.stack.supervisor import Backoff, ServiceComponent, Supervisor
from modelbus.stack.webhook import plan_webhook, register_or_warn
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.log_format import rendering
from modelbus_delivery.logs import get_logger

if TYPE_CHECKING:  # the watch needs prometheus_client: a thin client install has none
    from modelbus.stack.broker_watch import BrokerWatch

log = get_logger("stack")

DEFAULT_SERVICES: tuple[str, ...] = ("discovery", "catalog", "worker")
# The embedded broker's watch serves its metrics under this name, after the services.
BROKER_WATCH = "kafka"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(Exception):
    """Raised from the signal handler while the stack is still starting."""


# Said once at start (on stderr: stdout carries the endpoints and the ready line).
IN_MEMORY_NOTE = (
    "modelbus up: note: the embedded Kafka broker keeps its data in memory only; if it "
    "dies, requests and results in flight are lost and the catalog is rebuilt from the "
    "registry. Use --external-kafka host:port for a durable Kafka."
)

# ``modelbus catalog`` alone lists the catalog; the service is its ``serve`` subcommand.
SERVICE_COMMANDS: dict[str, tuple[str, ...]] = {"catalog": ("catalog", "serve")}


def service_argv(service: str) -> list[str]:
    """The command line of one modelbus service process (the stack has warned about unknown
    variables already: its services do not repeat it)."""
    return [sys.executable, "-m", "modelbus", "--no-env-warnings",
            *SERVICE_COMMANDS.get(service, (service,))]


def service_processes(
    services: Sequence[str], workers: int, gateway: bool = False
) -> list[tuple[str, str]]:
    """(service, process name) of every process to run: ``workers`` of the worker, then the
    gateway when asked for."""
    processes: list[tuple[str, str]] = []
    for service in services:
        if service == "worker" and workers > 1:
            processes.extend((service, f"worker-{i}") for i in range(1, workers + 1))
        else:
            processes.append((service, service))
    if gateway:
        processes.append(("gateway", "gateway"))
    return processes


def metrics_ports(processes: Sequence[tuple[str, str]], first: int) -> dict[str, int]:
    """Process name → its metrics port: consecutive from ``first`` (0: none at all)."""
    if first == 0:
        return {}
    return {name: first + index for index, (_, name) in enumerate(processes)}


def gateway_url(host: str, port: int) -> str:
    """Where a user reaches a server (the gateway, a service's ops port) listening on
    ``host`` (every interface: loopback)."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def metrics_url(host: str, port: int) -> str:
    """Where a user reaches the metrics of a service listening on ``host``."""
    return gateway_url(host, port) + "/metrics"


def wait_external_kafka(bootstrap: str, timeout: float) -> None:
    """Return once the first broker of ``bootstrap`` answers; else raise StartupError."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    if not host or not port.isdigit():
        raise StartupError(f"--external-kafka {bootstrap!r} is not host:port[,host:port...]")
    _wait(lambda: kafka_api_versions_ok(host, int(port)), timeout, f"kafka at {bootstrap}")


def wait_external_mlflow(uri: str, timeout: float) -> None:
    """Return once ``uri/health`` answers; else raise StartupError."""
    if urlsplit(uri).scheme not in ("http", "https"):
        raise StartupError(f"--external-mlflow {uri!r} is not an http(s) URI")
    _wait(lambda: mlflow_healthy(uri), timeout, f"mlflow at {uri}")


def _wait(ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise StartupError(f"{what} is not reachable after {timeout:.0f}s")
        time.sleep(0.5)


def _start_demo(settings: ModelbusSettings) -> None:
    """Run the demo (register, wait for the catalog, call each model) in a thread."""
    from modelbus.demo import run_demo  # needs the full mlflow: imported only when asked

    def run() -> None:
        try:
            run_demo(settings)
            log.info("demo_finished")
        except Exception:
            log.exception("demo_failed")

    threading.Thread(target=run, name="modelbus-demo", daemon=True).start()


def run_stack(
    data_dir: Path | str = ".modelbus",
    *,
    kafka_port: int = 9092,
    mlflow_port: int = 5000,
    host: str = "127.0.0.1",
    external_kafka: str | None = None,
    external_mlflow: str | None = None,
    services: Sequence[str] = DEFAULT_SERVICES,
    workers: int = 1,
    demo: bool = False,
    metrics_port: int = 0,
    argv_for: Callable[[str], list[str]] = service_argv,
    startup_timeout: float = 120.0,
    backoff: Backoff | None = None,
    out: TextIO | None = None,
    webhooks: bool = True,
    webhook_url: str | None = None,
    log_format: str = "auto",
    gateway_port: int = 0,
) -> int:
    """Run broker, MLflow and the services until SIGINT/SIGTERM/SIGHUP; return the exit code.

    Embedded components are skipped when an external endpoint is given. Once all is
    started, prints the endpoints and ``modelbus is up (Ctrl-C to stop)`` to ``out``
    (stdout) exactly once, after one ``NAME metrics: URL`` line per service process when
    ``metrics_port`` is not 0 (consecutive ports from it, in start order), then one for the
    watch of the embedded broker (``BROKER_WATCH``, the next port), which looks at the
    broker every ``embedded_broker_watch_s`` and warns before it slows to a halt. ``workers``
    worker processes are run (``worker-1``, … when more than one), members of one
    consumer group. Crashed children are restarted with backoff. The embedded broker's
    version, binary and SHA-256 go to stderr before it starts; a binary whose digest is not
    the pinned one is refused (one line, exit code 1), at a restart too. Returns 0 after a
    requested stop; startup problems (e.g. a busy port) print one line to stderr and
    return 1. Must be called from the main thread (it installs
    signal handlers).

    With ``webhooks``, discovery gets a receiver that MLflow calls on every model-version
    change, registered with the embedded MLflow, or with an external one only when
    ``webhook_url`` says how that server reaches the receiver.

    With ``gateway_port`` (0: none), a gateway process serves HTTP on ``host`` at that port
    (``gateway: http://HOST:PORT`` among the ready lines).

    The services log as ``log_format`` says for this process's stderr (``auto``: readable
    text on a terminal, else JSON lines), through ``MODELBUS_LOG_FORMAT``.
    """
    out = out or sys.stdout
    data = Path(data_dir).resolve()
    stop = threading.Event()
    starting = True

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        if starting:
            raise StopRequested(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    supervisor = Supervisor(backoff)
    watch: BrokerWatch | None = None
    try:
        data.mkdir(parents=True, exist_ok=True)
        settings = ModelbusSettings()
        watching = not external_kafka and settings.embedded_broker_watch_s > 0
        processes = service_processes(services, workers, gateway=bool(gateway_port))
        if gateway_port and port_in_use(gateway_port, host):
            raise PortInUseError("gateway", host, gateway_port)
        ports = metrics_ports(processes, metrics_port)
        if watching and metrics_port:
            ports[BROKER_WATCH] = metrics_port + len(processes)
        for name, port in ports.items():
            if port_in_use(port, host):
                raise PortInUseError(f"{name} metrics", host, port)
        if external_kafka:
            wait_external_kafka(external_kafka, startup_timeout)
            bootstrap = external_kafka
        else:
            binary = resolve_broker_binary(settings)
            print(f"modelbus up: kafka broker: {binary.describe()}", file=sys.stderr, flush=True)
            broker = EmbeddedBroker(kafka_port, data, host=host, binary=binary)
            supervisor.add("kafka", broker)
            bootstrap = broker.bootstrap_servers
            print(IN_MEMORY_NOTE, file=sys.stderr, flush=True)
            if watching:
                from modelbus.stack.broker_watch import start_broker_watch

                watch = start_broker_watch(broker, settings, host=host,
                                           metrics_port=ports.get(BROKER_WATCH, 0))
        webhook = (
            plan_webhook(data, host, webhook_url)
            if webhooks and "discovery" in services and (webhook_url or not external_mlflow)
            else None
        )
        if external_mlflow:
            wait_external_mlflow(external_mlflow, startup_timeout)
            tracking_uri = external_mlflow
        else:
            mlflow = EmbeddedMlflow(
                mlflow_port, data, host=host,
                webhook_key=webhook.keys.encryption_key if webhook else None,
            )
            supervisor.add("mlflow", _MlflowWithTimeout(mlflow, startup_timeout))
            tracking_uri = mlflow.tracking_uri
        env = {
            **os.environ,
            "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PYTHONUNBUFFERED": "1",
            # Decided once, for this stderr: `auto` on a terminal is readable text in every
            # service, whatever its own stderr turns out to be.
            "MODELBUS_LOG_FORMAT": rendering(log_format, sys.stderr.isatty()),
            **(webhook.discovery_env() if webhook else {}),  # read by discovery alone
        }
        env.pop("MODELBUS_MLFLOW_TRACKING_URI", None)
        if not external_kafka:  # a broker of its own starts empty: its services make them
            env["MODELBUS_KAFKA_CREATE_TOPICS"] = "true"
        for service, name in processes:
            metrics_env = {"MODELBUS_METRICS_PORT": str(ports.get(name, 0)),
                           "MODELBUS_METRICS_HOST": host}
            if service == "gateway":
                metrics_env |= {"MODELBUS_GATEWAY_PORT": str(gateway_port),
                                "MODELBUS_GATEWAY_HOST": host}
            process = ChildProcess(name, argv_for(service), env={**env, **metrics_env})
            supervisor.add(name, ServiceComponent(name, process))
        if webhook is not None and not register_or_warn(webhook, tracking_uri):
            print("modelbus up: note: the MLflow webhook could not be registered (see the "
                  "log); new versions are found by polling only", file=sys.stderr, flush=True)
        out.write(
            f"kafka bootstrap servers: {bootstrap}\n"
            f"mlflow tracking uri: {tracking_uri}\n"
            + "".join(f"{name} metrics: {metrics_url(host, port)}\n"
                      for name, port in ports.items())
            + (f"gateway: {gateway_url(host, gateway_port)}\n" if gateway_port else "")
            + "modelbus is up (Ctrl-C to stop)\n"
        )
        out.flush()
        log.info("stack_up", data_dir=str(data), processes=[name for _, name in processes])
        starting = False
        if stop.is_set():
            return 0
        if demo:
            _start_demo(settings.model_copy(
                update={"kafka_bootstrap_servers": bootstrap, "mlflow_tracking_uri": tracking_uri}
            ))
        while not stop.wait(0.2):
            supervisor.tick()
        return 0
    except StopRequested:
        return 0
    except StackError as exc:
        print(f"modelbus up: error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        starting = False
        # A second Ctrl-C during shutdown must not abandon children half-stopped.
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if watch is not None:
            watch.stop()
        supervisor.stop_all()
        log.info("stack_stopped")
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _MlflowWithTimeout:
    """Adapts EmbeddedMlflow to the supervisor with the stack's startup deadline."""

    def __init__(self, server: EmbeddedMlflow, timeout: float) -> None:
        self.server = server
        self.timeout = timeout

    def start(self) -> None:
        self.server.start(self.timeout)

    def poll(self) -> int | None:
        return self.server.poll()

    def stop(self) -> None:
        self.server.stop()
