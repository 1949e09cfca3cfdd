"""Settings for a CLI command: the environment, overridden by command-line options.

Options that change a setting (``-b``, ``-X``, ``--log-format``) record it on the click
context with ``override``; ``load_settings`` applies what they recorded. A bad value is one
line per problem naming where it came from (``MODELBUS_WORKER_MAX_IN_FLIGHT: …``,
``-X request.timeout.ms: …``), exit 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import IO, Any

import click
from pydantic import ValidationError

from modelbus_contract.environment import settings_error_lines
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.kafka_config import KafkaConfigError, connection_options

_OVERRIDES = "modelbus.settings_overrides"


@dataclass
class Overrides:
    """Settings given on the command line: field → value, and field → the option that
    gave it (for error messages)."""

    values: dict[str, Any] = field(default_factory=dict)
    named: dict[str, str] = field(default_factory=dict)


def overrides(ctx: click.Context | None = None) -> Overrides:
    """The overrides recorded on ``ctx``'s command line (shared by the whole command tree);
    none outside a click command."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return Overrides()
    found = ctx.meta.setdefault(_OVERRIDES, Overrides())
    assert isinstance(found, Overrides)
    return found


def override(ctx: click.Context, setting: str, value: Any, named: str) -> None:
    """Record that option ``named`` sets ``setting`` to ``value`` for this command."""
    recorded = overrides(ctx)
    recorded.values[setting] = value
    recorded.named[setting] = named


class SettingsError(click.ClickException):
    """Settings that cannot be used: one ``Error:`` line per problem, exit 1."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines

    def show(self, file: IO[Any] | None = None) -> None:
        for line in self.lines:
            click.echo(f"Error: {line}", file=file, err=file is None)


def settings_error(exc: ValidationError, named: dict[str, str] | None = None) -> SettingsError:
    """A settings class's ValidationError as lines naming the variables (or options)."""
    return SettingsError(settings_error_lines(exc, os.environ, named))


def load_settings() -> ModelbusSettings:
    """The settings of this command: the environment and the command line's overrides."""
    given = overrides()
    try:
        settings = ModelbusSettings(**given.values)
        connection_options(settings)  # TLS/SASL settings that cannot work: say so now
    except ValidationError as exc:
        raise settings_error(exc, given.named) from None
    except KafkaConfigError as exc:
        raise SettingsError([str(exc)]) from None
    return settings
