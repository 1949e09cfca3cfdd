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
    """Prepare model NAME version VERSION: cache its files and ensure the runtime image of
    its dependency set (shared by every model with the same requirements; no per-version
    image is built); print the runtime image's tag."""
    from modelbus_worker.images.docker_build import docker_client
    from modelbus_worker.images.runtime_image import prepare_model

    uri = tracking_uri or ModelbusSettings().mlflow_tracking_uri
    started = time.monotonic()
    try:
        prepared = prepare_model(docker_client(), ContainerSettings(), name, version, uri)
    except (ModelbusError, OSError) as exc:
        _fail(exc)
        return
    click.echo(f"{prepared.image}  (model files: {prepared.model_dir}; "
               f"{time.monotonic() - started:.1f}s)", err=True)
    click.echo(prepared.image)
