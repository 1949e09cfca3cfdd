"""Settings for a CLI command: a bad environment variable is one readable line, exit 1."""

from __future__ import annotations

import click
from pydantic import ValidationError

from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.kafka_config import KafkaConfigError, connection_options


def load_settings() -> ModelbusSettings:
    try:
        settings = ModelbusSettings()
        connection_options(settings)  # TLS/SASL settings that cannot work: say so now
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise click.ClickException(f"invalid configuration: {problems}") from None
    except KafkaConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None
    return settings
