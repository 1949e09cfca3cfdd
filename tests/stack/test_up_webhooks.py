"""``modelbus up`` registers the MLflow webhook: new versions are found without a poll."""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tests.stack import test_up
from tests.stack.test_up import RunUp, UpProcess, _register_tagged_model, _wait_for_catalog_entry

from modelbus.stack import free_tcp_port

pytestmark = pytest.mark.integration


@pytest.fixture
def run_up(tmp_path: Path) -> Iterator[RunUp]:
    """``run_up(args)`` starts ``modelbus up args``; everything is killed after the test."""
    started: list[UpProcess] = []

    def run(args: list[str]) -> UpProcess:
        started.append(UpProcess(args, tmp_path / f"up-{len(started)}.err"))
        return started[-1]

    yield run
    for up in started:
        up.kill_everything()


def our_webhooks(tracking_uri: str) -> list[tuple[str, str]]:
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return [(w.name, w.url) for w in client.list_webhooks() if w.name.startswith("modelbus")]


def start(run_up: RunUp, data_dir: Path, kafka_port: int, mlflow_port: int) -> UpProcess:
    up = run_up(
        [
            *("--data-dir", str(data_dir)),
            *("--kafka-port", str(kafka_port), "--mlflow-port", str(mlflow_port)),
            *("--services", "discovery,catalog"),
        ]
    )
    up.wait_ready(timeout=120)
    return up


async def test_up_registers_one_webhook_and_new_versions_skip_the_poll(
    run_up: RunUp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(test_up, "POLL_INTERVAL_S", 300.0)  # only webhooks can be this fast
    kafka_port, mlflow_port = free_tcp_port(), free_tcp_port()
    bootstrap, tracking_uri = f"127.0.0.1:{kafka_port}", f"http://127.0.0.1:{mlflow_port}"
    data_dir = tmp_path / "data"
    url = re.compile(r"http://127\.0\.0\.1:\d+/mlflow-webhook")
    latencies = []

    for run in (1, 2):  # the second start on the same data updates the webhook it made
        up = start(run_up, data_dir, kafka_port, mlflow_port)
        hooks = our_webhooks(tracking_uri)
        assert [name for name, _ in hooks] == ["modelbus-discovery"], hooks
        assert url.fullmatch(hooks[0][1]), hooks
        # The first model also waits out the services' start-up (consumer-group joins).
        warm_up = f"hook-warm-{run}-{uuid.uuid4().hex[:8]}"
        _register_tagged_model(tracking_uri, warm_up, tmp_path)
        await _wait_for_catalog_entry(up, bootstrap, warm_up, within_s=90)

        name = f"hook-{run}-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        _register_tagged_model(tracking_uri, name, tmp_path)
        await _wait_for_catalog_entry(up, bootstrap, name, within_s=5)
        latencies.append(time.monotonic() - started)

        assert '"webhook_registered"' in up.stderr()
        assert '"webhook_rejected"' not in up.stderr()
        assert json.loads((data_dir / "webhook-keys.json").read_text())["secret"] not in (
            up.stderr()
        )
        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(timeout=60) == 0, up.stderr()
        assert up.uncaught_tracebacks() == []
    print("create version -> catalog entry through modelbus up: "
          + ", ".join(f"{s:.2f} s" for s in latencies))
