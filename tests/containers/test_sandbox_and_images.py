"""Containers (standbys too) are locked down; runtime images are shared per dependency set."""

from __future__ import annotations

from typing import Any

import pytest

from modelbus_worker.images.runtime_image import prepare_model
from modelbus_worker.settings import ContainerSettings

from .conftest import Registry
from .waiting import wait_until

pytestmark = pytest.mark.integration


def assert_locked_down(container: Any, settings: ContainerSettings) -> None:
    """No network, read-only root and model files, no capabilities, non-root, limits."""
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == settings.pids_limit
    assert host["Memory"] > 0 and host["NanoCpus"] > 0

    def run(cmd: str) -> tuple[int, str]:
        code, out = container.exec_run(["sh", "-c", cmd])
        return code, out.decode()

    assert run("id -u") == (0, "10001\n")
    code, _ = run("touch /opt/x || touch /x || touch /opt/modelbus/x")
    assert code != 0
    assert run("touch /tmp/ok && echo ok")[0] == 0
    code, interfaces = run("cat /proc/net/dev")
    names = {line.split(":")[0].strip() for line in interfaces.splitlines()[2:]}
    assert names == {"lo"}
    probe = "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)"
    code, out = run(f'python -c "{probe}"')
    assert code != 0 and "unreachable" in out.lower()


async def test_container_has_no_network_read_only_root_and_non_root_user(
    pools: Any, scale_model: str, docker_client: Any
) -> None:
    pool = pools()
    container = docker_client.containers.get(await pool.warm(scale_model, "1"))
    assert_locked_down(container, pool.settings)

    def run(cmd: str) -> int:
        return int(container.exec_run(["sh", "-c", cmd])[0])

    # The model's files (hard links into the worker's cache) are readable, not writable.
    assert run("test -r /sock/model/MLmodel") == 0
    assert run("echo x >> /sock/model/MLmodel") != 0
    assert run("touch /sock/model/x || rm -f /sock/model/MLmodel") != 0
    assert run("test -f /sock/model/MLmodel") == 0


async def test_standby_container_is_locked_down_too(
    pools: Any, scale_model: str, docker_client: Any
) -> None:
    pool = pools()
    await pool.warm(scale_model, "1")
    await wait_until(lambda: bool(pool.starter.standbys.container_ids()), 60, "a standby")
    [ids] = pool.starter.standbys.container_ids().values()
    assert_locked_down(docker_client.containers.get(ids[0]), pool.settings)


def test_identical_requirements_share_a_runtime_image(
    docker_client: Any, container_settings: ContainerSettings, registry: Registry, scale_model: str,
    sum_model: str,
) -> None:
    a = prepare_model(docker_client, container_settings, scale_model, "1", registry.uri)
    b = prepare_model(docker_client, container_settings, sum_model, "1", registry.uri)
    assert a.image == b.image and a.image.startswith("modelbus/runtime:")
    assert a.model_dir != b.model_dir and (a.model_dir / "MLmodel").is_file()
    labels = docker_client.images.get(a.image).labels
    assert labels["modelbus.image"] == "runtime"
    assert labels["modelbus.depset"].startswith("modelbus/depset:")
    # Files and image reused, not fetched or built again (as after a worker restart).
    again = prepare_model(docker_client, container_settings, scale_model, "1", registry.uri)
    assert again.image == a.image and again.model_dir == a.model_dir
    assert "download_s" not in again.timings


def test_different_requirements_get_another_runtime_image(
    docker_client: Any, container_settings: ContainerSettings, registry: Registry, scale_model: str
) -> None:
    from .conftest import PIP_REQUIREMENTS

    other = registry.register("scale_model.py", "scale-six", [*PIP_REQUIREMENTS, "six"])
    a = prepare_model(docker_client, container_settings, scale_model, "1", registry.uri)
    b = prepare_model(docker_client, container_settings, other, "1", registry.uri)
    assert a.image != b.image
    depset_a = docker_client.images.get(a.image).labels["modelbus.depset"]
    depset_b = docker_client.images.get(b.image).labels["modelbus.depset"]
    assert depset_a != depset_b
