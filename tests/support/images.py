"""Removing per-model images of named models.

modelbus no longer builds them (models run from a runtime image per dependency set, which
stays cached like the depset and base images); this removes any left by older versions.
"""

from __future__ import annotations

import contextlib
from typing import Any

import docker.errors


def remove_model_images(docker_client: Any, names: list[str]) -> None:
    """Model images of the named models; runtime, depset and base images stay cached."""
    for name in names:
        for image in docker_client.images.list(
            filters={"label": [f"modelbus.model.name={name}", "modelbus.image=model"]}
        ):
            for tag in image.tags:
                with contextlib.suppress(docker.errors.APIError):  # in use by another run
                    docker_client.images.remove(tag, noprune=False)
