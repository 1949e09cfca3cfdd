"""The set-up scripts' ``--help``: the usage, exit 0, and nothing set up.

Each script runs from a copy of ``deploy/`` in which ``setup.sh`` (what installs apt
packages, starts dockerd and builds the virtualenv) is replaced by one that only leaves a
mark: ``--help`` must print its usage without that mark appearing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _copy_with_marking_setup(tmp_path: Path) -> tuple[Path, Path]:
    deploy = tmp_path / "repo" / "deploy"
    deploy.mkdir(parents=True)
    for script in ("run-stack.sh", "run-tests.sh"):
        shutil.copy(DEPLOY / script, deploy / script)
    mark = tmp_path / "set-up-ran"
    (deploy / "setup.sh").write_text(f"#!/usr/bin/env bash\ntouch '{mark}'\n")
    return deploy, mark


@pytest.mark.parametrize("script", ["run-stack.sh", "run-tests.sh"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_the_usage_and_sets_nothing_up(
    tmp_path: Path, script: str, flag: str
) -> None:
    deploy, mark = _copy_with_marking_setup(tmp_path)
    done = subprocess.run(["bash", str(deploy / script), "--demo", flag],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: bash deploy/{script}"), done.stdout
    assert not mark.exists()


def test_without_help_the_set_up_runs_first(tmp_path: Path) -> None:
    """The copy's marking set-up is what the scripts run (the check above can fail)."""
    deploy, mark = _copy_with_marking_setup(tmp_path)
    done = subprocess.run(["bash", str(deploy / "run-stack.sh")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert mark.exists()
    assert done.returncode != 0  # no .venv/bin/modelbus in the copy


def test_setup_help_prints_its_header_and_installs_nothing() -> None:
    done = subprocess.run(["bash", str(DEPLOY / "setup.sh"), "--help"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and "[setup]" not in done.stdout + done.stderr


STEPS = "install_packages\nstart_docker\ninstall_venv\nbuild_base_image\n"


@pytest.mark.parametrize(("min_free_mb", "warned"), [("999999999", True), ("1", False)])
def test_setup_says_first_when_the_disk_is_short(
    tmp_path: Path, min_free_mb: str, warned: bool
) -> None:
    """A full disk otherwise shows up later as an unrelated-looking pip or docker error. The
    copy runs only the disk check: the steps after it are cut out."""
    script = (DEPLOY / "setup.sh").read_text()
    assert STEPS in script
    deploy = tmp_path / "repo" / "deploy"
    deploy.mkdir(parents=True)
    (deploy / "setup.sh").write_text(script.replace(STEPS, ""))
    done = subprocess.run(["bash", str(deploy / "setup.sh")], capture_output=True, text=True,
                          timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "MODELBUS_MIN_FREE_MB": min_free_mb})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "MB free on the disk of" in line]
    assert len(lines) == (1 if warned else 0), done.stderr
