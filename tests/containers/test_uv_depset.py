"""Dependency-set images installed by uv on the host, through the real engine: the venv
unpacked offline with its bytecode and scripts, nothing of the index in the image; and a
set uv cannot install built by pip instead."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.private_index import PrivateIndex, build_wheel, private_index

from modelbus_worker.images import depset
from modelbus_worker.images.interpreter import default_interpreter
from modelbus_worker.settings import ContainerSettings, PipIndexSettings

from .test_private_index import image_contains

pytestmark = pytest.mark.integration

REQUIREMENTS = ["inhouse-tool==1.0"]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[PrivateIndex]:
    """A private index with one wheel (a module and a console script)."""
    wheel = build_wheel(tmp_path, "inhouse-tool", "1.0", {
        "inhouse_tool/__init__.py": "def main():\n    print('inhouse says hello')\n",
        "inhouse_tool-1.0.dist-info/entry_points.txt":
            "[console_scripts]\ninhouse-tool = inhouse_tool:main\n",
    })
    with private_index([wheel], "builder", f"pw{uuid.uuid4().hex}") as served:
        yield served


@pytest.fixture
def built(docker_client: Any) -> Iterator[list[str]]:
    tags: list[str] = []
    yield tags
    for tag in tags:
        docker_client.images.remove(tag, force=True)


def settings_for(index: PrivateIndex, tmp_path: Path) -> ContainerSettings:
    pip = PipIndexSettings(index_url=index.url(), trusted_host="127.0.0.1")  # type: ignore[arg-type]
    return ContainerSettings(cache_dir=tmp_path / "cache", pip=pip)


def run(docker_client: Any, tag: str, script: str) -> str:
    out = docker_client.containers.run(tag, ["sh", "-c", script], remove=True,
                                       network_mode="none", read_only=True)
    return str(out.decode()).strip()


def test_uv_installs_on_the_host_and_the_image_unpacks_it_offline(
    docker_client: Any, base_image: str, index: PrivateIndex, tmp_path: Path,
    built: list[str],
) -> None:
    settings = settings_for(index, tmp_path)
    tag = f"modelbus/test-depset:uv-{uuid.uuid4().hex[:8]}"
    built.append(tag)
    result = depset.build_depset(docker_client, settings, REQUIREMENTS,
                                 default_interpreter(settings), base_image, tag)
    assert result.installer == "uv"
    assert ("/files/inhouse_tool-1.0-py3-none-any.whl", 200) in index.requests
    packages = "/opt/venv/lib/python3.11/site-packages"
    out = run(docker_client, tag, (
        "id -u; inhouse-tool; python -c 'import inhouse_tool; print(inhouse_tool.__file__)'; "
        f"ls {packages}/inhouse_tool/__pycache__; stat -c '%U %a' {packages}/inhouse_tool/"
        "__init__.py /opt/venv/bin/inhouse-tool"
    )).splitlines()
    assert out[:3] == ["10001", "inhouse says hello", f"{packages}/inhouse_tool/__init__.py"]
    assert out[3].startswith("__init__.cpython-311")  # bytecode compiled by the container
    assert out[4:] == ["root 644", "root 755"]
    image = docker_client.images.get(tag)
    assert image.labels["modelbus.image"] == "depset"
    assert not image_contains(image, index.password.encode())
    assert not list(settings.build_root.iterdir())  # stage and context are gone


def test_a_set_uv_cannot_install_is_built_by_pip(
    docker_client: Any, base_image: str, index: PrivateIndex, tmp_path: Path,
    built: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    failing = tmp_path / "uv"
    failing.write_text("#!/bin/sh\necho 'error: uv cannot' >&2\nexit 2\n")
    failing.chmod(0o755)
    monkeypatch.setattr(depset, "find_uv", lambda: str(failing))
    settings = settings_for(index, tmp_path)
    tag = f"modelbus/test-depset:pip-{uuid.uuid4().hex[:8]}"
    built.append(tag)
    result = depset.build_depset(docker_client, settings, REQUIREMENTS,
                                 default_interpreter(settings), base_image, tag)
    assert result.installer == "pip"
    assert run(docker_client, tag, "inhouse-tool") == "inhouse says hello"
