"""The interpreter a model container runs: Python minor version, glibc and architecture.

Wheels are resolved for it and dependency-set images are keyed by it, so models logged
with different Python versions never share a wheelhouse or an image. Which one a model
version gets is decided from its files (``python_env.yaml`` / ``MLmodel``) by the
contract's placement rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelbus_contract.errors import ModelUnavailable
from modelbus_contract.interpreters import (
    DEBIAN_SUITES,
    Offer,
    place,
    python_minor,
    suite_offers,
    template_offer,
)
from modelbus_worker.settings import ContainerSettings


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


def _interpreter(offer: Offer, settings: ContainerSettings) -> Interpreter:
    return Interpreter(offer.python, offer.glibc, settings.container_arch,
                       suite=offer.suite, image=offer.image)


def offers(settings: ContainerSettings) -> list[Offer]:
    """What this worker can run, its default first: the configured base image (with
    ``container_python``) when there is one, then the Debian suites."""
    suites = suite_offers(settings)
    if settings.base_image:
        own = Offer(settings.container_python, settings.container_glibc, image=settings.base_image)
        return [own, *(o for o in suites if o.python != own.python)]
    return suites


def default_interpreter(settings: ContainerSettings) -> Interpreter:
    """The interpreter of models whose Python is not known."""
    if settings.base_image:
        return _interpreter(offers(settings)[0], settings)
    python, glibc = DEBIAN_SUITES.get(
        settings.debian_suite, (settings.container_python, settings.container_glibc))
    return Interpreter(python, glibc, settings.container_arch, suite=settings.debian_suite)


def interpreter_of_python(settings: ContainerSettings, python: str) -> Interpreter:
    """The interpreter offered for Python ``python`` (X.Y); ModelUnavailable if none is."""
    minor = python_minor(python)
    for offer in offers(settings):
        if offer.python == minor:
            return _interpreter(offer, settings)
    template = template_offer(settings, minor or python, settings.container_glibc)
    if minor is not None and template is not None:
        return _interpreter(template, settings)
    offered = ", ".join(o.describe() for o in offers(settings))
    raise ModelUnavailable(f"no interpreter offers Python {python} (offered: {offered}; "
                           "see MODELBUS_WORKER_PYTHON_SUITES and _BASE_IMAGE_TEMPLATE)")


def logged_python(model_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """The Python minor version a model was logged with and its MLmodel flavors."""
    flavors: dict[str, Any] = {}
    python: str | None = None
    try:
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
        flavors = dict(mlmodel.get("flavors") or {})
        python = python_minor((flavors.get("python_function") or {}).get("python_version"))
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        pass
    try:
        env = yaml.safe_load((model_dir / "python_env.yaml").read_text()) or {}
        python = python_minor(env.get("python")) or python
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    return python, flavors


def interpreter_for(
    model_dir: Path, settings: ContainerSettings, template_usable: Any = None,
) -> Interpreter:
    """The interpreter a model version runs under; raises ModelUnavailable where none can
    load it. ``template_usable(image) -> bool`` says whether a template image exists or
    can be pulled (no template is tried without it)."""
    python, flavors = logged_python(model_dir)
    available = offers(settings)
    template = None
    offered = {offer.python for offer in available}
    if (python is not None and python not in offered and settings.base_image_template
            and template_usable is not None):
        candidate = template_offer(settings, python, settings.container_glibc)
        if candidate is not None and candidate.image and template_usable(candidate.image):
            template = candidate
    placement = place(python, flavors, available, template)
    if placement.offer is None:
        raise ModelUnavailable(placement.problem or f"no interpreter for Python {python}")
    if python is None:
        return default_interpreter(settings)
    return _interpreter(placement.offer, settings)
