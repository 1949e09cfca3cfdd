"""Configuration of every modelbus process, read from the environment.

All variables carry the ``MODELBUS_`` prefix except the tracking URI, which keeps
MLflow's own name (``MLFLOW_TRACKING_URI``) so that one variable serves both the
services and any MLflow client on the same machine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Topics:
    """Topic names derived from the prefix; each can be overridden on its own."""

    def __init__(self, settings: ModelbusSettings) -> None:
        p = settings.topic_prefix
        self.discovered = settings.topic_discovered or f"{p}models.discovered"
        self.catalog = settings.topic_catalog or f"{p}models.catalog"
        self.requests = settings.topic_requests or f"{p}inference.requests"
        self.results = settings.topic_results or f"{p}inference.results"
        self.dlq = settings.topic_dlq or f"{p}inference.dlq"


class ModelbusSettings(BaseSettings):
    """Settings shared by discovery, catalog, worker, the client and the CLI."""

    model_config = SettingsConfigDict(env_prefix="MODELBUS_", extra="ignore")

    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_ssl_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    mlflow_tracking_uri: str = Field(
        default="http://localhost:5000",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MODELBUS_MLFLOW_TRACKING_URI"),
    )
    topic_prefix: str = "modelbus."
    topic_discovered: str | None = None
    topic_catalog: str | None = None
    topic_requests: str | None = None
    topic_results: str | None = None
    topic_dlq: str | None = None
    topic_partitions: int = Field(default=1, ge=1)

    datagrok_tag: str = "datagrok"
    poll_interval_s: float = Field(default=10.0, gt=0)
    mlflow_timeout_s: float = Field(default=20.0, gt=0, description="Per MLflow request.")
    registry_page_size: int = Field(default=100, ge=1, le=1000)
    retry_initial_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)

    kafka_fetch_max_wait_ms: int = Field(default=5, ge=0)
    max_message_bytes: int = Field(
        default=1_048_576, ge=65_536, description="Largest request or result record."
    )
    worker_max_in_flight: int = Field(default=32, ge=1)
    log_level: str = "INFO"

    @property
    def topics(self) -> Topics:
        return Topics(self)

