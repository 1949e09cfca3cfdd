"""``-b/--bootstrap-servers`` and ``-X key=value``, the Kafka options kcat users expect, for
any command that talks to Kafka::

    @click.command()
    @kafka_options
    def tail(...) -> None:
        settings = load_settings()  # MODELBUS_* overridden by -b and -X

The options take no parameter of the command's function: they record settings overrides
that ``load_settings`` applies. ``-b`` wins over ``-X bootstrap.servers``, both over
``MODELBUS_KAFKA_BOOTSTRAP_SERVERS``. An unknown property is one error line, exit 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from modelbus_delivery.kafka_properties import (
    PROPERTIES,
    PropertyError,
    property_settings,
    split_property,
)

from .settings import override, overrides

F = TypeVar("F", bound=Callable[..., object])

_BY_SERVERS = "-b"


class KafkaOptionError(click.ClickException):
    """A ``-b`` or ``-X`` that cannot be used: one line, exit 2 (a usage error)."""

    exit_code = 2


def _bootstrap_servers(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    if not value.strip():
        raise KafkaOptionError("-b/--bootstrap-servers: give HOST:PORT[,HOST:PORT...]")
    override(ctx, "kafka_bootstrap_servers", value.strip(), _BY_SERVERS)


def _properties(ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> None:
    try:
        updates = property_settings(split_property(text) for text in values)
    except PropertyError as exc:
        raise KafkaOptionError(f"-X {exc}") from None
    given = overrides(ctx).named
    for setting, (key, value) in updates.items():
        if given.get(setting) != _BY_SERVERS:
            override(ctx, setting, value, f"-X {key}")


_PROPERTY_HELP = (
    "A Kafka client property, as kcat and librdkafka name it (repeatable), over the "
    "MODELBUS_KAFKA_* variables: " + ", ".join(PROPERTIES) + "."
)


def kafka_options(command: F) -> F:
    """Add ``-b/--bootstrap-servers`` and ``-X key=value`` to a click command (apply it
    below ``@click.command()``); the command's settings come from ``load_settings()``."""
    command = click.option(
        "-X", "kafka_properties", multiple=True, metavar="KEY=VALUE", expose_value=False,
        callback=_properties, help=_PROPERTY_HELP,
    )(command)
    command = click.option(
        "-b", "--bootstrap-servers", metavar="HOST:PORT[,...]", default=None,
        expose_value=False, callback=_bootstrap_servers,
        help="Kafka bootstrap servers (default: MODELBUS_KAFKA_BOOTSTRAP_SERVERS).",
    )(command)
    return command
