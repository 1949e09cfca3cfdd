"""Blocking Docker adapter: run, inspect and remove locked-down model containers."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

import docker.errors

from modelbus_delivery.logs import get_logger
from modelbus_worker.images.base import RUNTIME_UID
from modelbus_worker.images.model_files import link_tree
from modelbus_worker.images.requirements import sanitize_tag_part
from modelbus_worker.images.usage import UsageRecords
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.pool.containers")

LABEL_MANAGED = "modelbus.managed"
LABEL_OWNER = "modelbus.owner"
LABEL_KEY = "modelbus.key"
SOCKET_NAME = "model.sock"
SOCKET_MOUNT = "/sock"  # where a container sees its socket directory
MODEL_DIR_NAME = "model"  # the model's files, inside the socket directory


def owner_id() -> str:
    """Identifies this worker process among the engine's containers: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class DockerContainers:
    """Starts containers with no network, a read-only root and every capability dropped."""

    def __init__(self, client: Any, settings: ContainerSettings) -> None:
        self.client = client
        self.settings = settings
        self.owner = owner_id()
        self.usage = UsageRecords(settings.cache_dir)

    def make_socket_dir(self) -> Path:
        """A fresh host directory the container (uid 10001) can create its socket in."""
        path = self.settings.socket_root / uuid.uuid4().hex[:12]
        path.mkdir(parents=True, mode=0o700)
        try:
            os.chown(path, RUNTIME_UID, RUNTIME_UID)
        except PermissionError:  # a non-root worker: let the container user in
            path.chmod(0o777)
        return path

    def place_model(self, socket_dir: Path, model_dir: Path) -> str:
        """Hard-link (or copy) a model's files into a container's socket directory, owned by
        the worker and read-only to the container; returns their path in the container."""
        # A container is handed one model, before any model code ran in it: the directory
        # must not exist yet (if it does, mkdir fails rather than follow what is there).
        link_tree(model_dir, socket_dir / MODEL_DIR_NAME)
        return f"{SOCKET_MOUNT}/{MODEL_DIR_NAME}"

    def start(self, image: str, key: str, socket_dir: Path) -> str:
        """Run ``image`` detached; returns the container id."""
        s = self.settings
        name = f"modelbus-{sanitize_tag_part(key, 60)}-{uuid.uuid4().hex[:6]}"
        container = self.client.containers.run(
            image,
            detach=True,
            name=name,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={s.tmpfs_size}"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=s.memory_limit,
            nano_cpus=int(s.cpus * 1e9),
            pids_limit=s.pids_limit,
            user=f"{RUNTIME_UID}:{RUNTIME_UID}",
            environment={"HOME": "/tmp"},
            volumes={str(socket_dir): {"bind": SOCKET_MOUNT, "mode": "rw"}},
            labels={LABEL_MANAGED: "true", LABEL_OWNER: self.owner, LABEL_KEY: key},
        )
        self.usage.touch_image(image)
        return str(container.id)

    def status(self, container_id: str) -> str:
        """Docker's state (``running``, ``exited`` ...) or ``missing``."""
        try:
            return str(self.client.containers.get(container_id).status)
        except docker.errors.NotFound:
            return "missing"

    def logs_tail(self, container_id: str, lines: int = 20) -> str:
        try:
            raw = self.client.containers.get(container_id).logs(tail=lines)
        except docker.errors.DockerException:
            return ""
        return bytes(raw).decode("utf-8", "replace").strip()

    def remove(self, container_id: str) -> None:
        """Kill and remove; a container already gone is fine."""
        try:
            self.client.containers.get(container_id).remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise

    # Both listings are sparse: one call, no inspect per container. Workers of this host
    # remove containers at any time, and an inspect of one removed after the listing fails.
    def running_ids(self) -> set[str]:
        """Ids of this worker's containers that are running."""
        found = self.client.containers.list(
            filters={"label": [f"{LABEL_OWNER}={self.owner}"], "status": "running"},
            sparse=True,
        )
        return {str(c.id) for c in found}

    def remove_stale(self) -> int:
        """Remove managed containers left by worker processes of this host that are gone,
        and their socket directories."""
        removed = 0
        host = socket.gethostname()
        listed = self.client.containers.list(
            all=True, filters={"label": LABEL_MANAGED}, sparse=True
        )
        for c in listed:
            owner = str((c.attrs.get("Labels") or {}).get(LABEL_OWNER, ""))
            owner_host, _, pid = owner.rpartition(":")
            if owner_host != host or owner == self.owner or _pid_alive(pid):
                continue
            self.remove(str(c.id))
            self._remove_socket_dir(c.attrs.get("Mounts") or ())
            removed += 1
        if removed:
            log.info("stale_containers_removed", count=removed)
        return removed

    def _remove_socket_dir(self, mounts: Any) -> None:
        """Delete the socket directory a removed container had mounted, if it is one this
        host's workers make (right under ``socket_root``): a worker that was killed left it."""
        root = self.settings.socket_root.resolve()
        for mount in mounts:
            if not isinstance(mount, dict) or mount.get("Destination") != SOCKET_MOUNT:
                continue
            source = Path(str(mount.get("Source") or "")).resolve()
            if source.parent == root and source.name:
                shutil.rmtree(source, ignore_errors=True)


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
