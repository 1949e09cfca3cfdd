"""How every Kafka client of modelbus connects: one place for servers, TLS and SASL.

Services, the client SDK and the CLI build their aiokafka producers, consumers and admin
clients with ``**connection_options(settings)``; nothing else reads the security settings.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from aiokafka.helpers import create_ssl_context

from modelbus_contract.settings import ModelbusSettings

KafkaOptions = Mapping[str, Any]


class KafkaConfigError(ValueError):
    """The security settings are incomplete or contradict each other."""


def connection_options(settings: ModelbusSettings) -> dict[str, Any]:
    """Keyword arguments shared by aiokafka's producer, consumer and admin client."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if settings.kafka_client_id is not None:
        options["client_id"] = settings.kafka_client_id
    if settings.kafka_request_timeout_ms is not None:
        options["request_timeout_ms"] = settings.kafka_request_timeout_ms
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(settings)
    if protocol.startswith("SASL_"):
        if not (settings.kafka_sasl_username and settings.kafka_sasl_password):
            raise KafkaConfigError(
                f"MODELBUS_KAFKA_SECURITY_PROTOCOL={protocol} needs "
                "MODELBUS_KAFKA_SASL_USERNAME and MODELBUS_KAFKA_SASL_PASSWORD"
            )
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    elif settings.kafka_sasl_mechanism:
        raise KafkaConfigError(
            "MODELBUS_KAFKA_SASL_MECHANISM is set but MODELBUS_KAFKA_SECURITY_PROTOCOL is "
            f"{protocol}: use SASL_PLAINTEXT or SASL_SSL"
        )
    return options


def as_options(kafka: str | KafkaOptions) -> KafkaOptions:
    """Options from ``connection_options`` as they are, or a bare ``host:port`` list."""
    return {"bootstrap_servers": kafka} if isinstance(kafka, str) else kafka


def servers_of(kafka: str | KafkaOptions) -> str:
    """The bootstrap servers, for log lines (never the credentials)."""
    return str(as_options(kafka)["bootstrap_servers"])


def _ssl_context(settings: ModelbusSettings) -> ssl.SSLContext:
    secret = settings.kafka_ssl_password
    password = secret.get_secret_value() if secret else None
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            password=password,
        )
    except (OSError, ssl.SSLError) as exc:
        raise KafkaConfigError(f"Kafka TLS settings unusable: {exc}") from None
    context.check_hostname = settings.kafka_ssl_check_hostname
    if not settings.kafka_ssl_check_hostname:
        context.verify_mode = ssl.CERT_NONE
    return context
