"""A service started against a missing broker or registry says so in one line and retries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from tests.support.waiting import wait_for

from modelbus.stack import free_tcp_port

pytestmark = pytest.mark.integration


def run_until(
    args: list[str], env: dict[str, str], event: str, count: int, timeout: float
) -> tuple[int, list[str]]:
    """Run ``python -m modelbus ARGS`` until it logged ``event`` ``count`` times, then
    SIGTERM it; returns (exit code, stderr lines)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelbus", *args],
        env={**os.environ, **env}, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: sum(f'"event": "{event}"' in line for line in list(lines)) >= count
            or proc.poll() is not None,
            timeout, message=f"{count} {event} lines",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=5)
    return proc.returncode, [line for line in lines if line.strip()]


def events(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_missing_broker_is_one_line_per_retry_not_a_traceback() -> None:
    code, lines = run_until(
        ["discovery"],
        {"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_tcp_port()}",
         "MODELBUS_RETRY_MAX_S": "1"},
        "kafka_unreachable", 2, 30,
    )
    assert code == 0
    assert not any("Traceback" in line for line in lines)
    found = [e for e in events(lines) if e["event"] == "kafka_unreachable"]
    assert len(found) >= 2
    assert "bootstrap_servers" in found[0]


def test_missing_registry_is_reported_and_retried(kafka_bootstrap: str) -> None:
    code, lines = run_until(
        ["discovery"],
        {"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
         "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_tcp_port()}",
         "MODELBUS_TOPIC_PREFIX": f"unreachable-{free_tcp_port()}.",
         "MODELBUS_RETRY_MAX_S": "1"},
        "registry_unreachable", 2, 60,
    )
    assert code == 0
    assert not any("Traceback" in line for line in lines)
    found = [e for e in events(lines) if e["event"] == "registry_unreachable"]
    assert len(found) >= 2
    assert found[0]["tracking_uri"]


@pytest.mark.parametrize("args", [["catalog"], ["predict", "--model", "m", "INPUT"]])
def test_cli_without_a_broker_exits_1_with_one_line(args: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "in.csv"
    csv.write_text("Molecule\nCCO\n")
    proc = subprocess.run(
        [sys.executable, "-m", "modelbus", *[str(csv) if a == "INPUT" else a for a in args]],
        env={**os.environ, "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_tcp_port()}"},
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: cannot reach Kafka at 127.0.0.1:")
