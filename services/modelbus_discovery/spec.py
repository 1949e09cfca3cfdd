"""FastStream declaration of what discovery publishes, for the AsyncAPI document."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from modelbus_contract.messages import DiscoveryEvent
from modelbus_contract.settings import ModelbusSettings


def discovery_broker(settings: ModelbusSettings) -> KafkaBroker:
    """A broker carrying discovery's publisher (documentation of the channel it owns)."""
    broker = KafkaBroker(settings.kafka_bootstrap_servers, client_id="modelbus-discovery")
    broker.publisher(
        settings.topics.discovered,
        title="discovery.publish.models-discovered",
        description="found / updated / removed events keyed `name/version` for every READY "
        "model version carrying the discovery tag (on the model or the version).",
        schema=DiscoveryEvent,
    )
    return broker
