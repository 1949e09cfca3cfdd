"""``modelbus images``: build or check the images model containers run from."""

from __future__ import annotations

import sys
import time

import click

from modelbus_contract.errors import ModelbusError
from modelbus_contract.settings import ModelbusSettings
from modelbus_worker.pool.settings import ContainerSettings


def _fail(exc: BaseException) -> None:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    click.echo(f"error: {first}", err=True)
    detail = str(exc).strip().splitlines()[1:]
    if detail:
        click.echo("\n".join(detail), err=True)
    sys.exit(1)


@click.group("images")
def images() -> None:
    """Build the Docker images model containers run from (offline, no registry needed)."""


@images.command("base")
def base() -> None:
    """Ensure the base image exists (debootstrap + docker import if needed); print its tag."""
    from modelbus_worker.images.base import ensure_base_image
    from modelbus_worker.images.docker_build import docker_client

    started = time.monotonic()
    try:
        tag = ensure_base_image(docker_client(), ContainerSettings())
    except (ModelbusError, OSError) as exc:
        _fail(exc)
        return
    click.echo(f"{tag}  ({time.monotonic() - started:.1f}s)", err=True)
    click.echo(tag)


@images.command("model")
@click.argument("name")
@click.argument("version")
@click.option("--tracking-uri", default=None, help="MLflow tracking/registry URI.")
def model(name: str, version: str, tracking_uri: str | None) -> None:
    """Ensure the image of model NAME version VERSION exists; print its tag."""
    from modelbus_worker.images.docker_build import docker_client
    from modelbus_worker.images.model_image import ensure_model_image

    uri = tracking_uri or ModelbusSettings().mlflow_tracking_uri
    try:
        image = ensure_model_image(docker_client(), ContainerSettings(), name, version, uri)
    except (ModelbusError, OSError) as exc:
        _fail(exc)
        return
    click.echo(image.tag)
