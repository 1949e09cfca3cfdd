"""The channel table: every topic of the contract, who writes and reads it, and what it
carries. Topic names, the topic plan (``topic_plan``: partitions and configs of each topic)
and the AsyncAPI document are all derived from this one table.

It reads the topic settings through ``TopicSettings`` (``ModelbusSettings`` is one), so
it sits below the settings module, whose ``topics`` it builds.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from .dead_letters import DlqReplay
from .inference import ArrowStream, ErrorBody
from .messages import CatalogEntry, DiscoveryEvent, ModelProblemReport, ServingReport


class TopicSettings(Protocol):
    """What the channel table reads of the settings (``ModelbusSettings``): the prefix,
    the partitions of partitioned topics, and ``topic_<role>`` overrides (read by name)."""

    @property
    def topic_prefix(self) -> str: ...

    @property
    def topic_partitions(self) -> int: ...


@dataclass(frozen=True)
class TopicSpec:
    """A topic the services need; compacted topics keep the latest value per key.

    ``extra_configs``: topic configs beyond the cleanup policy (retention, min ISR, ...),
    as (name, value) pairs sorted by name; ``topic_plan`` derives them from the settings.
    """

    name: str
    partitions: int = 1
    compacted: bool = False
    replication_factor: int = 1
    extra_configs: tuple[tuple[str, str], ...] = ()

    @property
    def configs(self) -> dict[str, str]:
        """Every topic config the topic is made with (the cleanup policy always)."""
        policy = "compact" if self.compacted else "delete"
        return {"cleanup.policy": policy, **dict(self.extra_configs)}


@dataclass(frozen=True)
class Channel:
    """One topic of the contract."""

    role: str  # attribute of ``Topics`` and suffix of ``MODELBUS_TOPIC_<ROLE>``
    suffix: str  # the default name after the prefix
    publisher: str  # service that writes it ("users" for requests)
    subscribers: tuple[str, ...]
    message: Any  # pydantic model (or union) of the value
    description: str
    compacted: bool = False
    partitioned: bool = False  # created with MODELBUS_TOPIC_PARTITIONS partitions
    # Other services that write other messages to the same topic: (service, message).
    also_published: tuple[tuple[str, Any], ...] = ()


CHANNELS: tuple[Channel, ...] = (
    Channel(
        "discovered", "models.discovered", "discovery", ("catalog",), DiscoveryEvent,
        "found / updated / removed events keyed `name/version` for every READY model version "
        "carrying the discovery tag (on the model or the version). Workers write model "
        "problem reports here too (key `name/version#worker`, header "
        "`message_type: model_problem`): a version they cannot start, or that starts again; "
        "the catalog merges them into the version's entry; and serving reports (key "
        "`name/version#serving`, header `message_type: serving_report`): a version being "
        "prepared, prepared or failed, shown as the entry's `serving`. Readers skip a "
        "`message_type` they do not know.",
        compacted=True,
        also_published=(("worker", ModelProblemReport), ("worker", ServingReport)),
    ),
    Channel(
        "catalog", "models.catalog", "catalog", ("worker", "users"), CatalogEntry,
        "Catalog entries keyed `name/version` (compacted); a null value (tombstone) when a "
        "version is removed. Committed by the catalog after the entry is published.",
        compacted=True,
    ),
    Channel(
        "requests", "inference.requests", "users", ("worker",), ArrowStream,
        "Prediction requests (Arrow IPC stream; headers `model`, `model_version`, "
        "`correlation_id`, `reply_to`, `timeout_ms`); committed after the answer is published. "
        "The interactive lane: workers take these first.",
        partitioned=True,
    ),
    Channel(
        "requests_bulk", "inference.requests.bulk", "users", ("worker",), ArrowStream,
        "The bulk lane: prediction requests exactly like the requests topic's (same contract, "
        "same keys, same partition count), for backlogs (the chunked client and pipelines). "
        "Workers read both lanes in one group, partition i of both on the same worker; while "
        "interactive requests wait or run, bulk requests keep only a minimum share of a "
        "worker's requests in flight.",
        partitioned=True,
    ),
    Channel(
        "results", "inference.results", "worker", ("users",), ArrowStream | ErrorBody,
        "Results keyed like the request, header `status` ok|error and the request's "
        "`correlation_id`; value Arrow on ok, the JSON error body on error. Sent to the "
        "request's `reply_to` topic when the worker accepts it. A request with "
        "`notify_progress: true` may first get progress notices (`status: preparing`, empty "
        "value) while its model version is prepared. A client's own reply topic also holds "
        "its sign of life (`status: alive`, empty value, written by the client).",
        partitioned=True,
    ),
    Channel(
        "dlq", "inference.dlq", "worker", ("operators",), ArrowStream,
        "Copies of requests and events that were refused or could not be processed, with "
        "headers `dlq_error_code`, `dlq_error_message`, `dlq_source`, `dlq_partition`, "
        "`dlq_offset` (catalog and worker write here). A request sent again by `modelbus "
        "dlq replay` carries `replayed_from` (`TOPIC/PARTITION@OFFSET` of its dead letter), "
        "on any later copy too.",
    ),
    Channel(
        "dlq_replays", "inference.dlq.replays", "operators", ("operators",), DlqReplay,
        "The replay ledger: one record per dead letter that `modelbus dlq replay` sent back "
        "to the requests topic, keyed `PARTITION:OFFSET` of the dead letter (compacted); a "
        "dead letter found here is not replayed again unless asked (`--again`).",
        compacted=True,
    ),
)

CHANNEL_BY_ROLE = {c.role: c for c in CHANNELS}


def topic_name(settings: TopicSettings, role: str) -> str:
    """The configured name of a channel: its override, else prefix + default suffix."""
    override: str | None = getattr(settings, f"topic_{role}")
    return override or f"{settings.topic_prefix}{CHANNEL_BY_ROLE[role].suffix}"


def private_reply_topic(settings: TopicSettings) -> str:
    """A new topic name for one client's answers, inside the workers' default reply_to
    allow-list (PREFIX + ``replies.`` + anything): PREFIX ``replies.`` + 32 hex digits."""
    return f"{settings.topic_prefix}replies.{uuid.uuid4().hex}"


def allowed_reply_pattern(topic_prefix: str, override: str | None = None) -> re.Pattern[str]:
    """The topics a request may name in ``reply_to`` besides the results topic (full match):
    ``MODELBUS_REPLY_TO_PATTERN`` (``override``), default PREFIX ``replies.`` + a name."""
    return re.compile(override or re.escape(topic_prefix) + r"replies\..+")


def private_reply_pattern(settings: TopicSettings) -> re.Pattern[str]:
    """What every name of ``private_reply_topic`` matches in full, and a shared reply topic
    (``PREFIX replies.TEAM``) must not: what ``modelbus topics prune-replies`` considers."""
    return re.compile(re.escape(settings.topic_prefix) + r"replies\.[0-9a-f]{32}")


class Topics:
    """Topic names of the settings: ``topics.requests``, ``topics.results``, ..."""

    def __init__(self, settings: TopicSettings) -> None:
        self.discovered = topic_name(settings, "discovered")
        self.catalog = topic_name(settings, "catalog")
        self.requests = topic_name(settings, "requests")
        self.requests_bulk = topic_name(settings, "requests_bulk")
        self.results = topic_name(settings, "results")
        self.dlq = topic_name(settings, "dlq")
        self.dlq_replays = topic_name(settings, "dlq_replays")
