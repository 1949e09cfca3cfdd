"""The documentation site builds with ``mkdocs build --strict`` (as CI builds it), and what it
generates at build time is there: every CLI command, the SDK's public names, the contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from modelbus.cli import main

REPOSITORY = Path(__file__).resolve().parents[2]
SERVICES = REPOSITORY / "services"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    # In a subprocess: the build's hook imports every lazily loaded CLI command into `main`.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SERVICES), str(REPOSITORY), env.get("PYTHONPATH", "")) if p
    )
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stderr[-5000:]}"
    return out


def test_the_cli_reference_lists_every_command(site: Path) -> None:
    page = (site / "cli" / "index.html").read_text()
    context = click.Context(main, info_name="modelbus")
    names = main.list_commands(context)
    assert {"up", "predict", "results", "catalog", "topics", "worker"} <= set(names)
    for name in names:
        assert f'id="modelbus-{name}"' in page, f"modelbus {name} is not in the CLI reference"
    assert "Sentinel" not in page  # click's UNSET default, shown by mkdocs-click's table style


def test_the_sdk_reference_documents_the_public_names(site: Path) -> None:
    page = (site / "sdk" / "index.html").read_text()
    for name in ("ModelbusClient.predict", "ModelbusClient.catalog",
                 "AsyncModelbusClient.predict", "AsyncModelbusClient.watch_catalog",
                 "ClientClosed"):
        assert f'id="modelbus_client.{name}"' in page
    assert 'id="modelbus_contract.errors.ModelNotFound"' in page


def test_the_contract_page_is_generated_from_the_schema_files(site: Path) -> None:
    page = (site / "concepts" / "contract" / "index.html").read_text()
    assert "<!-- contract:" not in page
    for path in sorted((REPOSITORY / "schemas").glob("*.v1.json")):
        assert f"<code>{path.name}</code>" in page
        title = json.loads(path.read_text())["title"]
        assert f'id="{title.lower()}"' in page


def test_the_quickstart_shows_the_example_it_runs(site: Path) -> None:
    page = (site / "quickstart" / "index.html").read_text()
    assert "ModelbusClient" in page  # examples/predict_iris.py, included at build time
    assert "--8&lt;--" not in page
