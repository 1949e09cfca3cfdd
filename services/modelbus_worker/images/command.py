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
@click.option("--python", "python", default=None, metavar="X.Y",
              help="The base of this Python (a configured Debian suite's, or the image "
              "template's); default: the default base.")
def base(python: str | None) -> None:
    """Ensure a base image exists (debootstrap + docker import if needed); print its tag."""
    from modelbus_worker.images.base import ensure_base_image
    from modelbus_worker.images.docker_build import docker_client
    from modelbus_worker.images.interpreter import interpreter_of_python

    settings = ContainerSettings()
    started = time.monotonic()
    try:
        interpreter = None if python is None else interpreter_of_python(settings, python)
        tag = ensure_base_image(docker_client(), settings, interpreter)
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
