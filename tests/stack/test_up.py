"""``modelbus up`` as a user runs it: a subprocess, its stdout, SIGTERM at the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from aiokafka import ConsumerRecord
from mlflow import MlflowClient
from mlflow.models import infer_signature
from tests.support.images import remove_model_images
from tests.support.kafka import read_topic
from tests.support.waiting import wait_for

from modelbus.stack import descendant_pids, free_tcp_port, pid_alive

MODELBUS = str(Path(sys.executable).with_name("modelbus"))
POLL_INTERVAL_S = 1.0
DEMO_TIMEOUT_S = 1500.0
pytestmark = pytest.mark.integration


class UpProcess:
    """A running ``modelbus up`` with its stdout collected line by line."""

    def __init__(self, args: list[str], stderr_path: Path) -> None:
        env = {**os.environ, "MODELBUS_POLL_INTERVAL_S": str(POLL_INTERVAL_S)}
        for name in ("MODELBUS_TOPIC_PREFIX", "MODELBUS_KAFKA_BOOTSTRAP_SERVERS"):
            env.pop(name, None)
        if "--metrics-port" not in args:  # the default ports may be another stack's
            args = [*args, "--metrics-port", "0"]
        if "--gateway-port" not in args:
            args = [*args, "--gateway-port", "0"]
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [MODELBUS, "up", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            start_new_session=True,  # lets the clean-up reach every descendant
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def uncaught_tracebacks(self) -> list[str]:
        """Raw tracebacks (a crash), not exceptions logged inside a JSON log line."""
        return [line for line in self.stderr().splitlines() if line.startswith("Traceback")]

    def wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"modelbus up exited {self.proc.returncode}:\n{self.stderr()}")
            return "modelbus is up (Ctrl-C to stop)" in self.lines

        wait_for(ready, timeout, interval=0.2, message="modelbus up ready line")

    def kill_everything(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._stderr.close()


RunUp = Callable[[list[str]], UpProcess]


@pytest.fixture
def run_up(tmp_path: Path) -> Iterator[RunUp]:
    """``run_up(args)`` starts ``modelbus up args``; everything is killed after the test."""
    started: list[UpProcess] = []

    def run(args: list[str]) -> UpProcess:
        up = UpProcess(args, tmp_path / f"up-{len(started)}.err")
        started.append(up)
        return up

    yield run
    for up in started:
        up.kill_everything()


class _Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    def predict(self, context: object, model_input: pd.DataFrame, params: object = None) -> object:
        return model_input


def _register_tagged_model(tracking_uri: str, name: str, work_dir: Path) -> None:
    """Save a trivial pyfunc and register it as version 1 with the ``datagrok`` tag.

    Only an explicit client is used: the fluent API would change process-wide tracking
    and registry URIs that other tests rely on.
    """
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(name, tags={"datagrok": "true"})
    experiment_id = client.create_experiment(f"{name}-experiment")
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    model_dir = work_dir / name
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=_Echo(),
        signature=infer_signature(frame, frame),
        pip_requirements=["pandas"],
    )
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
    client.set_terminated(run.info.run_id)
    client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)


async def _wait_for_catalog_entry(
    up: UpProcess, bootstrap: str, name: str, within_s: float
) -> None:
    """Wait for ``name/1`` on the catalog topic; fail with the stack's log otherwise."""

    def has_entry(records: Sequence[ConsumerRecord]) -> bool:
        for r in records:
            if r.key == f"{name}/1".encode() and r.value:
                entry = json.loads(r.value)
                return bool(entry["name"] == name and str(entry["version"]) == "1")
        return False

    try:
        await read_topic(bootstrap, "modelbus.models.catalog", until=has_entry, timeout=within_s)
    except TimeoutError as exc:
        tail = "\n".join(up.stderr().splitlines()[-30:])
        pytest.fail(f"{exc}\n--- modelbus up stderr (tail) ---\n{tail}", pytrace=False)


async def test_up_serves_a_tagged_model_and_stops_cleanly(run_up: RunUp, tmp_path: Path) -> None:
    kafka_port, mlflow_port, gateway_port = free_tcp_port(), free_tcp_port(), free_tcp_port()
    data_dir = tmp_path / "data"
    up = run_up(
        [
            *("--data-dir", str(data_dir)),
            *("--kafka-port", str(kafka_port), "--mlflow-port", str(mlflow_port)),
            *("--services", "discovery,catalog"),
            *("--gateway-port", str(gateway_port)),
        ]
    )
    up.wait_ready(timeout=120)
    bootstrap, tracking_uri = f"127.0.0.1:{kafka_port}", f"http://127.0.0.1:{mlflow_port}"
    assert up.lines == [
        f"kafka bootstrap servers: {bootstrap}",
        f"mlflow tracking uri: {tracking_uri}",
        f"gateway: http://127.0.0.1:{gateway_port}",
        "modelbus is up (Ctrl-C to stop)",
    ]

    # The first model also covers the services' start-up (a consumer-group join takes
    # seconds on Tansu); the second one measures the steady-state latency.
    warm_up = f"up-warm-{uuid.uuid4().hex[:8]}"
    _register_tagged_model(tracking_uri, warm_up, tmp_path)
    await _wait_for_catalog_entry(up, bootstrap, warm_up, within_s=90)

    name = f"up-test-{uuid.uuid4().hex[:8]}"
    _register_tagged_model(tracking_uri, name, tmp_path)
    await _wait_for_catalog_entry(up, bootstrap, name, within_s=POLL_INTERVAL_S + 5)

    # The gateway knows the model from the catalog (no worker runs here to answer it).
    wait_for(lambda: _http_status(f"http://127.0.0.1:{gateway_port}/models/{name}/ping") == 200,
             timeout=30, message="the gateway knows the model")
    assert _http_status(f"http://127.0.0.1:{gateway_port}/models/nope/ping") == 404

    family = [up.proc.pid, *descendant_pids(up.proc.pid)]
    # up, kafka, mlflow (+ its server), discovery, catalog, gateway
    assert len(family) >= 6, family
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=60) == 0, up.stderr()
    wait_for(
        lambda: not [pid for pid in family if pid_alive(pid)],
        timeout=10,
        message=f"no process of {family} left",
    )
    assert up.uncaught_tracebacks() == []


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_a_busy_port_is_one_readable_line(run_up: RunUp, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = run_up(["--data-dir", str(tmp_path / "d"), "--kafka-port", str(port)])
        code = up.proc.wait(timeout=60)
    assert code != 0
    assert up.lines == []
    errors = [line for line in up.stderr().splitlines() if line.startswith("modelbus up: error:")]
    expected = f"port {port} on 127.0.0.1 is already in use (needed by kafka)"
    assert errors == [f"modelbus up: error: {expected}"]
    assert up.uncaught_tracebacks() == []


def test_a_crashing_service_is_restarted_with_backoff(
    run_up: RunUp, tmp_path: Path, kafka_bootstrap: str, mlflow_tracking_uri: str
) -> None:
    up = run_up(
        [
            *("--data-dir", str(tmp_path / "d")),
            *("--external-kafka", kafka_bootstrap, "--external-mlflow", mlflow_tracking_uri),
            *("--services", "no-such-service"),
        ]
    )
    up.wait_ready(timeout=60)
    assert up.lines[:2] == [
        f"kafka bootstrap servers: {kafka_bootstrap}",
        f"mlflow tracking uri: {mlflow_tracking_uri}",
    ]

    def restarts() -> list[dict[str, object]]:
        events = [json.loads(line) for line in up.stderr().splitlines() if line.startswith("{")]
        return [e for e in events if e.get("event") == "component_restarting"]

    wait_for(lambda: len(restarts()) >= 2, timeout=20, message="two restarts")
    exits = [
        json.loads(line)
        for line in up.stderr().splitlines()
        if line.startswith("{") and '"component_exited"' in line
    ]
    assert [e["restart_in_s"] for e in exits[:2]] == [1.0, 2.0]
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(timeout=30) == 0


def test_up_runs_several_workers_in_one_group(
    run_up: RunUp, tmp_path: Path, kafka_bootstrap: str, mlflow_tracking_uri: str
) -> None:
    up = run_up(
        [
            *("--data-dir", str(tmp_path / "d")),
            *("--external-kafka", kafka_bootstrap, "--external-mlflow", mlflow_tracking_uri),
            *("--services", "worker", "--workers", "2"),
        ]
    )
    up.wait_ready(timeout=60)

    def events(name: str) -> list[dict[str, Any]]:
        lines = [line for line in up.stderr().splitlines() if line.startswith("{")]
        return [e for e in map(json.loads, lines) if e.get("event") == name]

    wait_for(lambda: len(events("worker_started")) == 2, timeout=120,
             message="two workers started")
    workers = [
        pid for pid in descendant_pids(up.proc.pid)
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2:] == [b"worker", b""]
    ]
    assert len(workers) == 2, workers
    assert [e["processes"] for e in events("stack_up")] == [["worker-1", "worker-2"]]
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=90) == 0, up.stderr()
    assert up.uncaught_tracebacks() == []


def test_killing_up_takes_its_children_along(run_up: RunUp, tmp_path: Path) -> None:
    up = run_up(
        [
            *("--data-dir", str(tmp_path / "d")),
            *("--kafka-port", str(free_tcp_port()), "--mlflow-port", str(free_tcp_port())),
            *("--services", "catalog"),
        ]
    )
    up.wait_ready(timeout=120)
    family = descendant_pids(up.proc.pid)
    assert len(family) >= 3, family  # kafka, mlflow (+ its server), catalog

    up.proc.kill()  # SIGKILL: no clean-up code runs, only the kernel's parent-death signal
    up.proc.wait(timeout=10)

    wait_for(
        lambda: not [pid for pid in family if pid_alive(pid)],
        timeout=30,
        message=f"no process of {family} left",
    )


def test_up_demo_prints_predictions_from_both_models(
    run_up: RunUp, tmp_path: Path, docker_client: Any
) -> None:
    up = run_up(
        ["--data-dir", str(tmp_path / "demo"), "--kafka-port", str(free_tcp_port()),
         "--mlflow-port", str(free_tcp_port()), "--demo"]
    )
    try:
        up.wait_ready(180)
        # First use on a fresh machine builds the demo models' dependency images.
        wait_for(
            lambda: "demo_finished" in up.stderr() or "demo_failed" in up.stderr(),
            DEMO_TIMEOUT_S, interval=0.5, message="the demo's predictions",
        )
        out = "\n".join(up.lines)
        assert "demo_failed" not in up.stderr(), up.stderr()[-3000:]
        assert "== demo-molecule-score v1" in out
        assert "Predicted" in out
        assert "== demo-iris-species v1" in out
        assert "species" in out
        descendants = descendant_pids(up.proc.pid)
        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(timeout=60) == 0
        wait_for(lambda: not any(pid_alive(p) for p in descendants), 30, message="no children")
        owners = {f"{socket.gethostname()}:{pid}" for pid in descendants}
        left = [
            c.name for c in docker_client.containers.list(all=True, ignore_removed=True)
            if c.labels.get("modelbus.owner") in owners
        ]
        assert not left, f"model containers left behind: {left}"
    finally:
        remove_model_images(docker_client, ["demo-molecule-score", "demo-iris-species"])
