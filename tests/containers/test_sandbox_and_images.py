"""Containers are locked down; images are shared per dependency set and reused."""

from __future__ import annotations

from typing import Any

import pytest

from modelbus_worker.images.model_image import LABEL_NAME, LABEL_VERSION, ensure_model_image
from modelbus_worker.pool.settings import ContainerSettings

from .conftest import Registry

pytestmark = pytest.mark.integration


async def test_container_has_no_network_read_only_root_and_non_root_user(
    pools: Any, scale_model: str, docker_client: Any
) -> None:
    pool = pools()
    container = docker_client.containers.get(await pool.warm(scale_model, "1"))
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == pool.settings.pids_limit
    assert host["Memory"] > 0 and host["NanoCpus"] > 0

    def run(cmd: str) -> tuple[int, str]:
        code, out = container.exec_run(["sh", "-c", cmd])
        return code, out.decode()

    assert run("id -u") == (0, "10001\n")
    code, _ = run("touch /model/x || touch /opt/x || touch /x")
    assert code != 0
    assert run("touch /tmp/ok && echo ok")[0] == 0
    code, interfaces = run("cat /proc/net/dev")
    names = {line.split(":")[0].strip() for line in interfaces.splitlines()[2:]}
    assert names == {"lo"}
    probe = "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)"
    code, out = run(f'python -c "{probe}"')
    assert code != 0 and "unreachable" in out.lower()


def test_identical_requirements_share_a_depset_image(
    docker_client: Any, container_settings: ContainerSettings, registry: Registry, scale_model: str,
    sum_model: str,
) -> None:
    a = ensure_model_image(docker_client, container_settings, scale_model, "1", registry.uri)
    b = ensure_model_image(docker_client, container_settings, sum_model, "1", registry.uri)
    assert a.tag != b.tag
    image_a, image_b = docker_client.images.get(a.tag), docker_client.images.get(b.tag)
    assert image_a.labels["modelbus.depset"] == image_b.labels["modelbus.depset"]
    assert image_a.labels[LABEL_NAME] == scale_model and image_a.labels[LABEL_VERSION] == "1"
    # Reused, not rebuilt, on the next call (as after a worker restart).
    again = ensure_model_image(docker_client, container_settings, scale_model, "1", registry.uri)
    assert again.tag == a.tag and again.built is False


def test_different_requirements_get_another_depset_image(
    docker_client: Any, container_settings: ContainerSettings, registry: Registry, scale_model: str
) -> None:
    from .conftest import PIP_REQUIREMENTS

    other = registry.register("scale_model.py", "scale-six", [*PIP_REQUIREMENTS, "six"])
    a = ensure_model_image(docker_client, container_settings, scale_model, "1", registry.uri)
    b = ensure_model_image(docker_client, container_settings, other, "1", registry.uri)
    depset_a = docker_client.images.get(a.tag).labels["modelbus.depset"]
    depset_b = docker_client.images.get(b.tag).labels["modelbus.depset"]
    assert depset_a != depset_b
