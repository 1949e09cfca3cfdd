"""``modelbus up`` recovers by itself when its embedded broker or MLflow server dies.

The embedded broker keeps everything in memory: the restarted one has no topics, no catalog
and no consumer offsets. The services must notice, re-create the topics, rebuild the catalog
and re-join their groups within seconds; warm containers are kept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.stack.test_up import UpProcess
from tests.support.echo_model import FRAME
from tests.support.echo_model import register_echo_model as _register
from tests.support.waiting import wait_for

from modelbus.client import ModelbusClient
from modelbus.stack import descendant_pids, free_tcp_port
from modelbus.stack.broker import kafka_api_versions_ok
from modelbus.stack.mlflow_server import mlflow_healthy
from modelbus_contract.errors import ModelbusError

pytestmark = pytest.mark.integration

RECOVERY_BOUND_S = 30.0
COLD_START_S = 600.0
def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _child_pid(up: UpProcess, *marks: bytes) -> int:
    found = [p for p in descendant_pids(up.proc.pid) if all(m in _cmdline(p) for m in marks)]
    assert found, f"no child of modelbus up with {marks}"
    return found[0]


def _answered(bootstrap: str, name: str, timeout: float) -> bool:
    try:
        with ModelbusClient(bootstrap) as client:
            client.predict(name, FRAME, timeout=timeout)
        return True
    except (ModelbusError, OSError, TimeoutError) as exc:
        print(f"  not yet: {type(exc).__name__}: {str(exc)[:120]}")
        return False
    except Exception as exc:  # kafka errors while the broker comes back
        print(f"  not yet: {type(exc).__name__}: {str(exc)[:120]}")
        return False


@pytest.fixture
def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[UpProcess, str, str, str, int]]:
    """``modelbus up`` with one warm model: (up, bootstrap, tracking uri, model, kafka port)."""
    # MLflow's usage telemetry sometimes races with the first registry call of a process
    # (KeyError '_MLFLOW_TELEMETRY_SESSION_ID'); it has nothing to do with what is tested.
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    kafka_port, mlflow_port = free_tcp_port(), free_tcp_port()
    up = UpProcess(
        [
            *("--data-dir", str(tmp_path / "data")),
            *("--kafka-port", str(kafka_port), "--mlflow-port", str(mlflow_port)),
        ],
        tmp_path / "up.err",
    )
    try:
        yield from _warm(up, tmp_path, kafka_port, mlflow_port)
    finally:
        up.kill_everything()


def _warm(
    up: UpProcess, tmp_path: Path, kafka_port: int, mlflow_port: int
) -> Iterator[tuple[UpProcess, str, str, str, int]]:
    up.wait_ready(timeout=120)
    bootstrap, tracking_uri = f"127.0.0.1:{kafka_port}", f"http://127.0.0.1:{mlflow_port}"
    name = f"recovery-{uuid.uuid4().hex[:8]}"
    _register(tracking_uri, name, tmp_path)
    with ModelbusClient(bootstrap) as client:
        deadline = time.monotonic() + COLD_START_S
        while True:  # the catalog entry may not be there yet: model_not_found until it is
            try:
                client.predict(name, FRAME, timeout=COLD_START_S)
                break
            except ModelbusError as exc:
                if time.monotonic() > deadline or exc.code not in ("model_not_found", "timeout"):
                    raise
                time.sleep(0.5)
        started = time.monotonic()
        client.predict(name, FRAME, timeout=10)
        print(f"warm request answered in {time.monotonic() - started:.3f}s")
    yield up, bootstrap, tracking_uri, name, kafka_port


def _watch_catalog(bootstrap: str, out: Path) -> subprocess.Popen[bytes]:
    """``modelbus catalog --watch`` as a user runs it, printing into ``out``."""
    env = {**os.environ, "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    with open(out, "wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "modelbus", "catalog", "--watch"],
                                env=env, stdout=sink, stderr=subprocess.DEVNULL)


def test_a_killed_broker_is_back_serving_within_30s(
    served: tuple[UpProcess, str, str, str, int], tmp_path: Path,
) -> None:
    up, bootstrap, tracking_uri, name, kafka_port = served
    watched = tmp_path / "watch.out"
    watch = _watch_catalog(bootstrap, watched)
    try:
        wait_for(lambda: name in watched.read_text(), 60, interval=0.2,
                 message=f"catalog --watch lists {name}")
        _broker_restart_is_survived(up, bootstrap, name, kafka_port)
        # The watch reconnected by itself: a model registered after the restart shows up.
        later = f"recovery-later-{uuid.uuid4().hex[:8]}"
        _register(tracking_uri, later, tmp_path)
        wait_for(lambda: later in watched.read_text(), RECOVERY_BOUND_S, interval=0.2,
                 message=f"catalog --watch lists {later}, registered after the restart")
        assert watch.poll() is None
    finally:
        watch.terminate()
        watch.wait(30)


def _broker_restart_is_survived(up: UpProcess, bootstrap: str, name: str, kafka_port: int) -> None:
    """kill -9 of the broker: a call in flight ends by its deadline, requests are answered
    and the catalog is rebuilt within the bound, a client from before goes on by itself,
    the in-memory note was said once."""
    broker = _child_pid(up, b"broker", b"--storage-engine")
    with ModelbusClient(bootstrap) as client:
        os.kill(broker, signal.SIGKILL)
        killed = time.monotonic()
        # A call in flight across the broker's death ends by its deadline, not later.
        try:
            client.predict(name, FRAME, timeout=5)
        except ModelbusError as exc:
            print(f"call across the broker's death: {exc.code}: {str(exc)[:120]}")
        assert time.monotonic() - killed < 5 + 3
        wait_for(lambda: kafka_api_versions_ok("127.0.0.1", kafka_port), 60, interval=0.1,
                 message="the restarted broker")
        back = time.monotonic()
        print(f"broker accepting connections {back - killed:.1f}s after kill -9")
        wait_for(lambda: _answered(bootstrap, name, timeout=5), RECOVERY_BOUND_S + 30,
                 interval=0.2, message=f"{name} answered again")
        recovered = time.monotonic() - back
        print(f"RECOVERY: answered again {recovered:.1f}s after the broker accepted connections")
        assert recovered <= RECOVERY_BOUND_S

        def in_catalog() -> bool:  # rebuilt on the broker, not only in the worker's memory
            with ModelbusClient(bootstrap) as fresh:
                return any(e.name == name for e in fresh.catalog(timeout=10))

        wait_for(in_catalog, RECOVERY_BOUND_S, interval=0.5, message=f"{name} in the catalog")
        rebuilt = time.monotonic() - back
        print(f"RECOVERY: catalog rebuilt {rebuilt:.1f}s after the broker accepted connections")
        assert rebuilt <= RECOVERY_BOUND_S

        def same_client_answered() -> bool:  # the client from before reconnected by itself
            try:
                client.predict(name, FRAME, timeout=5)
            except ModelbusError as exc:
                print(f"  same client not yet: {exc.code}: {str(exc)[:120]}")
                return False
            return True

        wait_for(same_client_answered, RECOVERY_BOUND_S, interval=0.2,
                 message="the client from before the restart answered")
        print(f"RECOVERY: the client from before answered {time.monotonic() - back:.1f}s "
              "after the broker accepted connections")
    assert up.proc.poll() is None
    notes = [line for line in up.stderr().splitlines() if "in memory only" in line]
    assert len(notes) == 1 and "--external-kafka" in notes[0], notes  # once, not per restart
    assert up.uncaught_tracebacks() == []


def test_a_killed_mlflow_keeps_warm_models_and_discovery_resumes(
    served: tuple[UpProcess, str, str, str, int], tmp_path: Path,
) -> None:
    up, bootstrap, tracking_uri, name, _ = served
    server = _child_pid(up, b"mlflow", b"server")
    os.killpg(os.getpgid(server), signal.SIGKILL)  # the server and its workers: its own group
    killed = time.monotonic()
    with ModelbusClient(bootstrap) as client:
        for _ in range(20):  # warm requests need no registry
            client.predict(name, FRAME, timeout=10)
    wait_for(lambda: mlflow_healthy(tracking_uri), 120, interval=0.2, message="mlflow back")
    back = time.monotonic()
    print(f"mlflow healthy again {back - killed:.1f}s after kill -9")
    newer = f"recovery-new-{uuid.uuid4().hex[:8]}"
    _register(tracking_uri, newer, tmp_path)
    registered = time.monotonic()
    wait_for(lambda: _answered(bootstrap, newer, timeout=COLD_START_S), COLD_START_S,
             interval=0.5, message=f"{newer} served")
    served_after = time.monotonic() - registered
    print(f"RECOVERY: model registered after mlflow's restart served {served_after:.1f}s later")
    assert served_after <= RECOVERY_BOUND_S  # one poll (1 s here) and a warm runtime image
    assert up.uncaught_tracebacks() == []
