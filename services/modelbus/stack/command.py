"""The ``modelbus up`` click command (registered on the main CLI group by ``modelbus.cli``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from modelbus.progress_bars import quiet_progress_bars
from modelbus.stack.runner import DEFAULT_SERVICES, run_stack
from modelbus_client.cli.settings import load_settings
from modelbus_delivery.logs import configure_logging


def _parse_services(value: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise click.BadParameter("give at least one service, e.g. discovery,catalog")
    return names


def _check_service_settings(services: tuple[str, ...]) -> None:
    """Read the settings the services read beside ``ModelbusSettings`` now: a bad
    ``MODELBUS_WORKER_*`` value stops ``up`` with a line naming it, instead of failing every
    restart of a service (the ValidationError becomes that line in ``modelbus.cli``)."""
    if "worker" in services:
        from modelbus_worker.settings import ContainerSettings

        ContainerSettings()
    elif "catalog" in services:
        from modelbus_contract.interpreters import InterpreterSettings

        InterpreterSettings()


@click.command("up")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".modelbus"),
    show_default=True,
    help="Where MLflow's database, artifacts and the component logs are kept.",
)
@click.option("--kafka-port", type=int, default=9092, show_default=True)
@click.option("--mlflow-port", type=int, default=5000, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface the embedded broker and MLflow listen on.",
)
@click.option(
    "--external-kafka",
    metavar="BOOTSTRAP",
    default=None,
    help="Use this Kafka (host:port[,...]) instead of starting the embedded broker.",
)
@click.option(
    "--external-mlflow",
    metavar="URI",
    default=None,
    help="Use this MLflow tracking server instead of starting one.",
)
@click.option(
    "--services",
    default=",".join(DEFAULT_SERVICES),
    show_default=True,
    help="Comma-separated services to run.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes to run; they share the requests as one Kafka consumer group.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9400,
    show_default=True,
    help="First port of the services' /metrics, /healthz and /readyz endpoints: one port "
    "each, consecutive in start order; 0: none.",
)
@click.option(
    "--gateway-port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port of the HTTP gateway (MLflow scoring protocol and Open Inference Protocol) on "
    "--host; 0: no gateway.",
)
@click.option("--demo", is_flag=True, help="Register the demo models once the stack is up.")
@click.option(
    "--webhooks/--no-webhooks",
    default=True,
    show_default=True,
    help="Have MLflow call discovery on every model-version change (instant discovery; "
    "polling stays as the backstop).",
)
@click.option(
    "--webhook-url",
    metavar="URL",
    default=None,
    help="With --external-mlflow: register the webhook with that server at this URL, which "
    "must reach discovery's receiver (it listens on --host at the URL's port).",
)
def up(
    data_dir: Path,
    kafka_port: int,
    mlflow_port: int,
    host: str,
    external_kafka: str | None,
    external_mlflow: str | None,
    services: str,
    workers: int,
    metrics_port: int,
    gateway_port: int,
    demo: bool,
    webhooks: bool,
    webhook_url: str | None,
) -> None:
    """Run Kafka, MLflow and the modelbus services locally until Ctrl-C."""
    settings = load_settings()
    _check_service_settings(_parse_services(services))
    configure_logging(settings.log_level, settings.log_format)
    quiet_progress_bars(os.environ)  # the demo's and, inherited, the services'
    code = run_stack(
        data_dir,
        kafka_port=kafka_port,
        mlflow_port=mlflow_port,
        host=host,
        external_kafka=external_kafka,
        external_mlflow=external_mlflow,
        services=_parse_services(services),
        workers=workers,
        metrics_port=metrics_port,
        demo=demo,
        webhooks=webhooks,
        webhook_url=webhook_url,
        log_format=settings.log_format,
        gateway_port=gateway_port,
    )
    sys.exit(code)
