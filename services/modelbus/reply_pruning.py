"""Which private reply topics a gone client left behind (pure: observations and a time in,
decisions out). ``modelbus topics prune-replies`` observes and deletes.

The rule. A candidate is a topic whose whole name is a private reply topic's
(``PREFIX replies.`` + 32 hex digits: ``channels.private_reply_pattern``); a team's shared
``replies.NAME`` topic never is. A live client writes a ``status: alive`` record to its own
topic when it makes it and every ``MODELBUS_CLIENT_REPLY_HEARTBEAT_S`` (5 min), and the
answers land there too; so a candidate's client is gone when

- its newest record is older than ``idle`` (default 1 h), or
- it holds no record at all, and still none after a grace wait (a client writes its first
  alive record right after making the topic; an empty topic is one whose client died
  between the two, or a client of a version without heartbeats).

A topic whose records could not be read, or whose newest record lies in the future (clock
skew), is kept.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from modelbus_worker.quantities import format_duration


@dataclass(frozen=True)
class Decision:
    topic: str
    delete: bool
    why: str


def decide(
    candidates: list[str],
    newest_ms: Mapping[str, int | None],
    empty_after_grace: Collection[str],
    now_ms: int,
    idle_s: float,
) -> list[Decision]:
    """One decision per candidate, in name order (the module doc's rule).

    ``newest_ms``: per topic, its newest record's timestamp (``None``: no record; a topic
    left out could not be read). ``empty_after_grace``: the topics with no record that
    still had none after the grace wait.
    """
    decisions = []
    for topic in sorted(candidates):
        if topic not in newest_ms:
            decisions.append(Decision(topic, False, "its records could not be read"))
            continue
        newest = newest_ms[topic]
        if newest is None:
            if topic in empty_after_grace:
                decisions.append(Decision(topic, True, "no record, not even a sign of life"))
            else:
                decisions.append(Decision(topic, False, "no record yet (a client starting?)"))
            continue
        age_s = (now_ms - newest) / 1000
        if age_s < 0:
            decisions.append(Decision(topic, False, "its newest record is in the future"))
        elif age_s >= idle_s:
            decisions.append(Decision(topic, True, f"newest record {format_duration(age_s)} old"))
        else:
            decisions.append(Decision(
                topic, False, f"alive: newest record {format_duration(age_s)} old"
            ))
    return decisions
