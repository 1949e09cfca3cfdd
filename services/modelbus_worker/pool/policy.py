"""Pure decisions of the pool: which warm containers to evict, and when."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SlotView:
    """What the policy needs to know about one warm container."""

    key: str
    last_used: float
    in_flight: int = 0


def idle_victims(slots: Iterable[SlotView], now: float, idle_timeout_s: float) -> list[str]:
    """Keys of containers unused for at least ``idle_timeout_s`` and serving nothing."""
    return [
        s.key for s in slots if s.in_flight == 0 and now - s.last_used >= idle_timeout_s
    ]


def lru_victims(slots: Iterable[SlotView], capacity: int) -> list[str]:
    """Least recently used idle containers to stop so at most ``capacity`` remain.

    Busy containers are never chosen, so the result may leave more than ``capacity``
    running; the caller retries on the next occasion.
    """
    slots = list(slots)
    excess = len(slots) - max(capacity, 0)
    if excess <= 0:
        return []
    idle = sorted((s for s in slots if s.in_flight == 0), key=lambda s: (s.last_used, s.key))
    return [s.key for s in idle[:excess]]


def model_key(name: str, version: str) -> str:
    """The pool's key of a model version (same form as the contract's Kafka key)."""
    return f"{name}/{version}"


def retry_allowed(attempt: int, max_attempts: int = 2) -> bool:
    """Whether a request whose container died on ``attempt`` (1-based) gets another go."""
    return attempt < max_attempts


@dataclass(frozen=True)
class StartFailure:
    """A model version that failed to start: why, how often, and when to try again."""

    reason: str
    failures: int
    retry_at: float


def remember_failure(
    previous: StartFailure | None, reason: str, now: float,
    initial_s: float = 10.0, maximum_s: float = 300.0,
) -> StartFailure:
    """The failure record after one more failed start: the wait doubles each time."""
    failures = (previous.failures if previous else 0) + 1
    wait = min(maximum_s, initial_s * 2 ** (failures - 1))
    return StartFailure(reason, failures, now + wait)
