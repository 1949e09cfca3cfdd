"""Kafka client properties as kcat and librdkafka name them (``-X security.protocol=SSL``),
mapped onto the settings that ``kafka_config.connection_options`` turns into aiokafka's
options. Only properties aiokafka has an equivalent of are taken; any other is refused by
name, with the closest one modelbus knows.

Pure: values are handed to the settings as text, which validate them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass


class PropertyError(ValueError):
    """A ``-X`` argument that is not ``key=value`` of a property modelbus can set."""


def _upper(value: str) -> str:
    return value.upper()


def _identification(value: str) -> str:
    """librdkafka's ``ssl.endpoint.identification.algorithm``: ``https`` checks the broker's
    host name, ``none`` does not."""
    algorithm = value.strip().lower()
    if algorithm not in ("https", "none", ""):
        raise PropertyError(
            f"ssl.endpoint.identification.algorithm: {value!r} is not https or none"
        )
    return "true" if algorithm == "https" else "false"


@dataclass(frozen=True)
class Property:
    """The setting a client property sets, and how its text becomes the setting's."""

    setting: str
    convert: Callable[[str], str] = str


PROPERTIES: Mapping[str, Property] = {
    "bootstrap.servers": Property("kafka_bootstrap_servers"),
    "metadata.broker.list": Property("kafka_bootstrap_servers"),
    "security.protocol": Property("kafka_security_protocol", _upper),
    "sasl.mechanism": Property("kafka_sasl_mechanism", _upper),
    "sasl.mechanisms": Property("kafka_sasl_mechanism", _upper),
    "sasl.username": Property("kafka_sasl_username"),
    "sasl.password": Property("kafka_sasl_password"),
    "ssl.ca.location": Property("kafka_ssl_cafile"),
    "ssl.certificate.location": Property("kafka_ssl_certfile"),
    "ssl.key.location": Property("kafka_ssl_keyfile"),
    "ssl.key.password": Property("kafka_ssl_password"),
    "ssl.endpoint.identification.algorithm": Property("kafka_ssl_check_hostname", _identification),
    "client.id": Property("kafka_client_id"),
    "request.timeout.ms": Property("kafka_request_timeout_ms"),
    "session.timeout.ms": Property("kafka_session_timeout_ms"),
    "fetch.wait.max.ms": Property("kafka_fetch_max_wait_ms"),
}


def split_property(text: str) -> tuple[str, str]:
    """``"key=value"`` → ``("key", "value")`` (the value may hold ``=``)."""
    key, equals, value = text.partition("=")
    key = key.strip()
    if not equals or not key:
        raise PropertyError(f"{text!r} is not KEY=VALUE (e.g. security.protocol=SSL)")
    return key, value


def property_settings(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Setting → (the property that sets it, its value as the setting reads it); a later
    pair of the same setting wins."""
    updates: dict[str, tuple[str, str]] = {}
    for key, value in pairs:
        found = PROPERTIES.get(key)
        if found is None:
            raise PropertyError(unknown_property(key))
        updates[found.setting] = (key, found.convert(value))
    return updates


def unknown_property(key: str) -> str:
    close = difflib.get_close_matches(key, PROPERTIES, n=1, cutoff=0.75)
    hint = f"did you mean {close[0]}?" if close else "known: " + ", ".join(sorted(PROPERTIES))
    return f"{key}: not a Kafka client property modelbus can set ({hint})"
