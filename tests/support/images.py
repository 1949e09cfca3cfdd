"""Removing the model images a test run built (their tags are unique to its registry)."""

from __future__ import annotations

import contextlib
from typing import Any

import docker.errors


def remove_model_images(docker_client: Any, names: list[str]) -> None:
    """Model images of the named models; depset and base images stay cached."""
    for name in names:
        for image in docker_client.images.list(
            filters={"label": [f"modelbus.model.name={name}", "modelbus.image=model"]}
        ):
            for tag in image.tags:
                with contextlib.suppress(docker.errors.APIError):  # in use by another run
                    docker_client.images.remove(tag, noprune=False)
