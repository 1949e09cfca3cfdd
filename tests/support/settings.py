"""Settings for tests: the session's broker and MLflow, a topic prefix of their own."""

from __future__ import annotations

import uuid

from modelbus_contract.settings import ModelbusSettings


def isolated_settings(
    kafka_bootstrap: str, mlflow_tracking_uri: str, stem: str = "test"
) -> ModelbusSettings:
    """Fresh topics (``STEM-<uuid>.``) so tests never read each other's messages."""
    return ModelbusSettings().model_copy(
        update={
            "kafka_bootstrap_servers": kafka_bootstrap,
            "mlflow_tracking_uri": mlflow_tracking_uri,
            "topic_prefix": f"{stem}-{uuid.uuid4().hex[:12]}.",
            "poll_interval_s": 1.0,
            # Requests alone start containers, unless a test of background preparation
            # asks for a policy: the others count and time starts that requests cause.
            "worker_prepare": "none",
        }
    )


def answered_on_results_topic(settings: ModelbusSettings) -> ModelbusSettings:
    """Clients made with these settings ask for their answers on the shared results topic
    (not a reply topic of their own): for tests that read the answers there."""
    return settings.model_copy(update={"client_reply_topic": settings.topics.results})
