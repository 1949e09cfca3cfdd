"""The topic plan: every topic of the settings with its partitions, replication and
configs (pure: settings in, ``TopicSpec``s out).

The services and clients make missing topics from it (unless ``kafka_create_topics`` is
false), and ``modelbus topics plan|apply|check`` print, make and compare it. The cleanup
policy is fixed per channel (compacted: catalog and discovered; the others delete); the
rest comes from the ``topic_*`` settings, and what they leave unset is the broker's default.
"""

from __future__ import annotations

from typing import Protocol

from .channels import CHANNEL_BY_ROLE, CHANNELS, TopicSettings, TopicSpec, topic_name

# The retention setting of each channel that has one (compacted channels keep every key).
_RETENTION_OF_ROLE = {
    "requests": "topic_requests_retention_ms",
    "requests_bulk": "topic_requests_retention_ms",
    "results": "topic_results_retention_ms",
    "dlq": "topic_dlq_retention_ms",
}


class PlanSettings(TopicSettings, Protocol):
    """What the plan reads of the settings (``ModelbusSettings`` is one)."""

    @property
    def topic_replication_factor(self) -> int: ...

    @property
    def topic_min_insync_replicas(self) -> int | None: ...

    @property
    def topic_requests_retention_ms(self) -> int | None: ...

    @property
    def topic_results_retention_ms(self) -> int | None: ...

    @property
    def topic_dlq_retention_ms(self) -> int | None: ...

    @property
    def topic_compaction_delete_retention_ms(self) -> int | None: ...

    @property
    def topic_compaction_segment_ms(self) -> int | None: ...

    @property
    def topic_compaction_min_cleanable_dirty_ratio(self) -> float | None: ...

    @property
    def client_reply_topic(self) -> str | None: ...


def _configs(pairs: dict[str, object]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, str(value)) for name, value in pairs.items() if value is not None))


def _common(settings: PlanSettings) -> dict[str, object]:
    return {"min.insync.replicas": settings.topic_min_insync_replicas}


def _compaction(settings: PlanSettings) -> dict[str, object]:
    return {
        "delete.retention.ms": settings.topic_compaction_delete_retention_ms,
        "segment.ms": settings.topic_compaction_segment_ms,
        "min.cleanable.dirty.ratio": settings.topic_compaction_min_cleanable_dirty_ratio,
    }


def topic_spec(settings: PlanSettings, role: str) -> TopicSpec:
    """The planned topic of one channel (``role``: ``requests``, ``catalog``, ...)."""
    channel = CHANNEL_BY_ROLE[role]
    extra = _common(settings)
    if channel.compacted:
        extra |= _compaction(settings)
    elif role in _RETENTION_OF_ROLE:
        extra["retention.ms"] = getattr(settings, _RETENTION_OF_ROLE[role])
    return TopicSpec(
        topic_name(settings, role),
        settings.topic_partitions if channel.partitioned else 1,
        channel.compacted,
        settings.topic_replication_factor,
        _configs(extra),
    )


def topic_specs(settings: PlanSettings, roles: tuple[str, ...]) -> list[TopicSpec]:
    """The planned topics of these channels."""
    return [topic_spec(settings, role) for role in roles]


def reply_topic_spec(settings: PlanSettings, name: str, partitions: int) -> TopicSpec:
    """A reply topic: a client's own (1 partition) or a team's shared one (the requests'
    partitions: answers are keyed like the requests). It holds results: their retention."""
    extra = _common(settings) | {"retention.ms": settings.topic_results_retention_ms}
    return TopicSpec(name, partitions, False, settings.topic_replication_factor,
                     _configs(extra))


def shared_reply_topic_spec(settings: PlanSettings, name: str) -> TopicSpec:
    """A team's shared reply topic (``client_reply_topic``, ``--reply-topic``)."""
    return reply_topic_spec(settings, name, settings.topic_partitions)


def plan(settings: PlanSettings, reply_topics: tuple[str, ...] = ()) -> list[TopicSpec]:
    """Every topic of the channel table, then the shared reply topics: ``reply_topics`` and
    the settings' ``client_reply_topic`` (when it is not the results topic itself)."""
    specs = topic_specs(settings, tuple(c.role for c in CHANNELS))
    known = {s.name for s in specs}
    wanted = [*reply_topics, *([settings.client_reply_topic] if settings.client_reply_topic
                               else [])]
    for name in wanted:
        if name not in known:
            known.add(name)
            specs.append(shared_reply_topic_spec(settings, name))
    return specs


def missing_topics_line(missing: list[str], reply_topics: tuple[str, ...] = ()) -> str:
    """The one line a service or client stops with when topics it needs are missing and
    it may not make them: their names and the command that makes them."""
    many = len(missing) > 1
    command = "modelbus topics apply" + "".join(
        f" --reply-topic {name}" for name in missing if name in reply_topics
    )
    return (
        f"topic{'s' if many else ''} {', '.join(missing)} {'are' if many else 'is'} missing "
        f"(or not visible to this principal) and MODELBUS_KAFKA_CREATE_TOPICS=false: create "
        f"{'them' if many else 'it'} with `{command}` (`modelbus topics plan` prints the "
        f"kafka-topics.sh commands)"
    )
