"""The interpreter a model container runs: Python minor version, glibc and architecture.

Wheels are resolved for it and dependency-set images are keyed by it, so models logged
with different Python versions never share a wheelhouse or an image.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelbus_worker.pool.settings import ContainerSettings


@dataclass(frozen=True)
class Interpreter:
    """Where a model's Python comes from and what its wheels must fit."""

    python: str  # minor version, e.g. "3.11"
    glibc: str  # e.g. "2.36": the newest manylinux tag its wheels may carry
    arch: str = "x86_64"
    suite: str | None = None  # the Debian suite its base image is built from, offline
    image: str | None = None  # or an image (local or pullable) providing the interpreter

    @property
    def abi(self) -> str:
        return f"cp{self.python.replace('.', '')}"


def default_interpreter(settings: ContainerSettings) -> Interpreter:
    """The interpreter of the configured default base image."""
    return Interpreter(
        settings.container_python, settings.container_glibc, settings.container_arch,
        suite=settings.debian_suite, image=settings.base_image,
    )
