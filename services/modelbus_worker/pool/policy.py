"""Pure decisions of the pool: which warm containers to evict, and when."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from modelbus_worker.failures import StartFailure


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


def remembered_message(failure: StartFailure, key: str, now: float) -> str:
    """The answer to a request of a version whose start failed: the reason first (its
    decisive line), then how often it failed and when it is tried again."""
    wait = max(failure.retry_at - now, 0.0)
    return (
        f"{failure.reason}\n({key} failed to start ({failure.failures} time(s)); "
        f"next attempt in {wait:.0f}s)"
    )
