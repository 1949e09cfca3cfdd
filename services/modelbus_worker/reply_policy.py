"""Which topics a request may have its answer sent to (pure logic).

A requester names its reply topic, so the name is input like any other: only the results
topic and names matching the operator's pattern (default ``PREFIX`` + ``replies.*``) are
accepted, and the service's own topics never are, whatever the pattern says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelbus_contract.channels import allowed_reply_pattern
from modelbus_contract.settings import ModelbusSettings

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True)
class ReplyPolicy:
    """The default reply topic, the pattern of allowed others, and the forbidden ones."""

    results_topic: str
    pattern: re.Pattern[str]
    internal: frozenset[str]

    @classmethod
    def from_settings(cls, settings: ModelbusSettings) -> ReplyPolicy:
        topics = settings.topics
        return cls(
            topics.results,
            allowed_reply_pattern(settings.topic_prefix, settings.reply_to_pattern),
            frozenset({topics.discovered, topics.catalog, topics.requests, topics.dlq,
                       topics.dlq_replays}),
        )

    def check(self, reply_to: str) -> tuple[str, str | None]:
        """The topic to answer on, and the problem when the requested one is refused."""
        if not reply_to or reply_to == self.results_topic:
            return self.results_topic, None
        shown = reply_to if len(reply_to) <= 120 else reply_to[:120] + "…"
        if not _TOPIC_NAME.fullmatch(reply_to) or reply_to in (".", ".."):
            return self.results_topic, f"reply_to {shown!r} is not a valid topic name"
        if reply_to in self.internal:
            return self.results_topic, f"reply_to {shown!r} is an internal modelbus topic"
        if not self.pattern.fullmatch(reply_to):
            return self.results_topic, (
                f"reply_to {shown!r} is not allowed: use {self.results_topic!r} or a topic "
                f"matching {self.pattern.pattern!r}"
            )
        return reply_to, None
