"""uv on the host: its command line and environment for the container's interpreter and the
index settings, scripts made to run in the container, a real install from a private index,
and pip asked when uv cannot install a set (no Docker here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from tests.support.private_index import build_wheel, private_index

from modelbus_contract.errors import ModelUnavailable
from modelbus_worker.images import depset
from modelbus_worker.images.dependency_failures import DependencyFailures
from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.images.pip_index import uv_environment
from modelbus_worker.images.uv_install import (
    UvFailed,
    container_script,
    find_uv,
    stage_venv,
    uv_install_command,
    uv_platform,
)
from modelbus_worker.images.wheelhouse import wheelhouse_key
from modelbus_worker.settings import ContainerSettings, PipIndexSettings

PRIVATE = "http://user:s3cret-token@127.0.0.1:8080/simple"
INTERPRETER = Interpreter("3.11", "2.36")


def test_the_platform_is_the_containers_glibc_capped_at_the_newest_uv_knows() -> None:
    assert uv_platform("2.36", "x86_64") == "x86_64-manylinux_2_36"
    assert uv_platform("2.31", "aarch64") == "aarch64-manylinux_2_31"
    # Debian trixie's glibc 2.41: its wheels are those of 2.40 and older.
    assert uv_platform("2.41", "x86_64") == "x86_64-manylinux_2_40"


def test_the_command_installs_binary_wheels_for_the_containers_python_and_no_secret() -> None:
    command = uv_install_command("uv", Interpreter("3.13", "2.41"), Path("t"), Path("r.txt"))
    assert command[:3] == ["uv", "pip", "install"]
    joined = " ".join(command)
    for part in ("--target t", "--python-version 3.13", "--python-platform x86_64-manylinux_2_40",
                 "--only-binary :all:", "--index-strategy unsafe-best-match", "-r r.txt",
                 "--no-python-downloads"):
        assert part in joined
    assert "s3cret" not in joined and "127.0.0.1" not in joined


def test_index_settings_reach_uvs_environment_with_its_separators() -> None:
    settings = PipIndexSettings(
        index_url=PRIVATE,  # type: ignore[arg-type]
        extra_index_url=f" {PRIVATE}  https://download.pytorch.org/whl/cpu ",  # type: ignore[arg-type]
        find_links="/srv/wheels  /srv/more",  # type: ignore[arg-type]
        trusted_host="127.0.0.1 pkgs.example.com:8080",
    )
    assert uv_environment(settings) == {
        "UV_INDEX_URL": PRIVATE,
        "UV_EXTRA_INDEX_URL": f"{PRIVATE} https://download.pytorch.org/whl/cpu",
        "UV_FIND_LINKS": "/srv/wheels,/srv/more",
        "UV_INSECURE_HOST": "127.0.0.1 pkgs.example.com:8080",
    }
    assert uv_environment(PipIndexSettings()) == {}


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (b"#!/home/w/.venv/bin/python3.11\nimport sys\n", b"#!/opt/venv/bin/python\nimport sys\n"),
        (b"#!/usr/bin/python -I\nx\n", b"#!/opt/venv/bin/python\nx\n"),
        # uv's trampoline for an interpreter path too long for a #! line
        (b"#!/bin/sh\n'''exec' '/very/long/path/bin/python' \"$0\" \"$@\"\n' '''\nimport sys\n",
         b"#!/opt/venv/bin/python\nimport sys\n"),
        (b"#!/bin/sh\necho python\n", b"#!/bin/sh\necho python\n"),
        (b"\x7fELF\x02\x01", b"\x7fELF\x02\x01"),
    ],
)
def test_scripts_run_the_containers_python(script: bytes, expected: bytes) -> None:
    assert container_script(script) == expected


@pytest.fixture
def uv() -> str:
    found = find_uv()
    assert found is not None, "uv is part of the server extra"
    return found


def entry_point_wheel(directory: Path) -> Path:
    return build_wheel(directory, "inhouse-tool", "1.0", {
        "inhouse_tool/__init__.py": "def main():\n    print('hello')\n",
        "inhouse_tool-1.0.dist-info/entry_points.txt":
            "[console_scripts]\ninhouse-tool = inhouse_tool:main\n",
    })


def test_uv_installs_from_a_private_index_into_the_venvs_layout(
    uv: str, tmp_path: Path
) -> None:
    wheel = entry_point_wheel(tmp_path)
    with private_index([wheel], "builder", "pw-right") as index:
        pip = PipIndexSettings(index_url=index.url(), trusted_host="127.0.0.1")  # type: ignore[arg-type]
        settings = ContainerSettings(cache_dir=tmp_path / "cache", pip=pip)
        venv = stage_venv(uv, settings, ["inhouse-tool==1.0"], INTERPRETER, tmp_path / "stage")
    packages = venv / "lib" / "python3.11" / "site-packages"
    assert (packages / "inhouse_tool" / "__init__.py").is_file()
    assert (packages / "inhouse_tool-1.0.dist-info" / "INSTALLER").read_text().strip() == "uv"
    script = venv / "bin" / "inhouse-tool"
    assert script.read_text().splitlines()[0] == "#!/opt/venv/bin/python"
    assert os.access(script, os.X_OK)
    assert not (packages / "bin").exists()
    assert (settings.cache_dir / "uv").is_dir()  # the shared cache lives in the worker's


def test_uv_refused_by_the_index_fails_without_the_password(
    uv: str, tmp_path: Path
) -> None:
    wheel = entry_point_wheel(tmp_path)
    with private_index([wheel], "builder", "pw-right") as index:
        pip = PipIndexSettings(index_url=index.url("pw-wrong"), trusted_host="127.0.0.1")  # type: ignore[arg-type]
        settings = ContainerSettings(cache_dir=tmp_path / "cache", pip=pip)
        with pytest.raises(UvFailed) as info:
            stage_venv(uv, settings, ["inhouse-tool==1.0"], INTERPRETER, tmp_path / "stage")
    assert info.value.output
    assert "pw-wrong" not in info.value.output


def test_a_set_uv_cannot_install_is_diagnosed_by_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_uv = tmp_path / "uv"
    fake_uv.write_text("#!/bin/sh\necho 'error: no wheels with a matching platform tag' >&2\n"
                       "exit 1\n")
    fake_uv.chmod(0o755)
    asked: list[list[str]] = []

    def pip_says_why(settings: Any, normalized: list[str], interpreter: Any,
                     failures: Any) -> Path:
        asked.append(normalized)
        raise ModelUnavailable("docopt==0.6.2: no wheel for Python 3.11 / "
                               "manylinux_2_36_x86_64 (only a source distribution)")

    monkeypatch.setattr(depset, "find_uv", lambda: str(fake_uv))
    monkeypatch.setattr(depset, "ensure_wheelhouse", pip_says_why)
    settings = ContainerSettings(cache_dir=tmp_path / "cache")
    reqs = ["docopt==0.6.2", "pandas", "pyarrow"]
    memory = DependencyFailures()
    with capture_logs() as logs, pytest.raises(ModelUnavailable, match="only a source"):
        depset.build_depset(None, settings, reqs, INTERPRETER, "base", "modelbus/depset:x",
                            memory)
    assert asked == [reqs]
    failed = [e for e in logs if e["event"] == "uv_install_failed"]
    assert failed and "no wheels with a matching platform tag" in failed[0]["output"]
    assert not list(settings.build_root.iterdir())  # the stage is gone


def test_a_remembered_set_runs_neither_uv_nor_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ContainerSettings(cache_dir=tmp_path / "cache")
    reqs = ["docopt==0.6.2", "pandas", "pyarrow"]
    memory = DependencyFailures()
    memory.record(wheelhouse_key(settings, reqs, INTERPRETER), "docopt==0.6.2: no wheel", 60,
                  3600)
    monkeypatch.setattr(depset, "find_uv", lambda: "/nonexistent/uv")
    with pytest.raises(ModelUnavailable, match="remembered"):
        depset.build_depset(None, settings, reqs, INTERPRETER, "base", "modelbus/depset:x",
                            memory)
    assert not settings.build_root.exists()


def test_pip_is_used_when_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELBUS_WORKER_CONTAINER_INSTALLER", "pip")
    assert ContainerSettings().container_installer == "pip"
    settings = ContainerSettings(cache_dir=tmp_path, container_installer="pip")
    monkeypatch.setattr(depset, "find_uv", lambda: pytest.fail("uv looked up"))
    built: list[Path] = []
    monkeypatch.setattr(depset, "ensure_wheelhouse", lambda *a: tmp_path / "wheels")
    monkeypatch.setattr(depset, "build_depset_image", lambda *a: built.append(a[2]))
    result = depset.build_depset(None, settings, ["pandas"], INTERPRETER, "base", "t:x")
    assert (result.installer, built) == ("pip", [tmp_path / "wheels"])
