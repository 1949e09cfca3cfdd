"""``modelbus images``: build or check the images model containers run from (registered on
the main CLI group by ``modelbus.cli``).

The container settings and the Docker client come from the composition root
(``wiring.build_images``); the work is the worker's image code. Both are imported when a
command runs: ``modelbus --help`` in a client-only install lists this one too.
"""

from __future__ import annotations

import sys
import time

import click
from pydantic import ValidationError

from modelbus_client.cli.settings import load_settings, settings_error
from modelbus_contract.environment import is_settings_error
from modelbus_contract.errors import ModelbusError


def _fail(exc: BaseException) -> None:
    if isinstance(exc, ValidationError) and is_settings_error(exc):
        raise settings_error(exc) from None  # one line per bad variable
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
    from modelbus_worker.images.interpreter import interpreter_of_python

    from .wiring import build_images

    started = time.monotonic()
    try:
        tools = build_images()
        interpreter = None if python is None else interpreter_of_python(tools.settings, python)
        tag = ensure_base_image(tools.docker(), tools.settings, interpreter)
    except (ModelbusError, OSError, ValidationError) as exc:  # settings: one line
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
    from modelbus_worker.images.runtime_image import prepare_model

    from .wiring import build_images

    uri = tracking_uri or load_settings().mlflow_tracking_uri
    started = time.monotonic()
    try:
        tools = build_images()
        prepared = prepare_model(tools.docker(), tools.settings, name, version, uri)
    except (ModelbusError, OSError, ValidationError) as exc:  # settings: one line
        _fail(exc)
        return
    click.echo(f"{prepared.image}  (model files: {prepared.model_dir}; "
               f"{time.monotonic() - started:.1f}s)", err=True)
    click.echo(prepared.image)


@images.command("prune")
@click.option("--unused-for", "unused_for", default=None, metavar="DURATION",
              help="Remove what was unused this long: 30m, 12h, 7d "
              "(default: MODELBUS_WORKER_IMAGE_MAX_IDLE, 7d).")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option("--all-unused", is_flag=True,
              help="Also the base and root-file-system images (rebuilt by debootstrap).")
def prune(unused_for: str | None, dry_run: bool, all_unused: bool) -> None:
    """Remove runtime, dependency-set and model images, build leftovers, wheelhouses and
    cached model files unused for a while; never an image a container (running or
    stopped) uses. Prints one line per item and the bytes freed."""
    # Imported here: the client-only install has no Docker SDK (and needs no `images`).
    from docker.errors import DockerException

    from modelbus_worker.images.prune import PrunedItem
    from modelbus_worker.images.prune import prune as run_prune
    from modelbus_worker.quantities import format_duration, format_size, parse_duration

    from .wiring import build_images

    verb = "would remove" if dry_run else "removed"

    def report(item: PrunedItem) -> None:
        click.echo(f"{verb} {item.kind} {item.name}  {format_size(item.size)}  "
                   f"unused for {format_duration(item.idle_s)}")

    try:
        tools = build_images()
        max_idle = parse_duration(unused_for) if unused_for else tools.settings.image_max_idle
        freed = run_prune(tools.docker(), tools.settings, max_idle, include_base=all_unused,
                          dry_run=dry_run, report=report)
    except (ModelbusError, OSError, ValueError, DockerException) as exc:
        _fail(exc)
        return
    total = "would free" if dry_run else "freed"
    click.echo(f"{total} {format_size(freed)} ({freed} bytes)")
