"""Failures remembered with a growing backoff: a model version's start (the pool), a
dependency set's resolution (the images). Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StartFailure:
    """A model version that failed to start: why, how often, and when to try again.

    ``code`` is the error code of the failure, so a remembered failure is answered with
    the code the first one had (``model_unavailable`` stays ``model_unavailable``)."""

    reason: str
    failures: int
    retry_at: float
    code: str = "internal"


def remember_failure(
    previous: StartFailure | None, reason: str, now: float,
    initial_s: float = 10.0, maximum_s: float = 300.0, code: str = "internal",
) -> StartFailure:
    """The failure record after one more failed start: the wait doubles each time."""
    failures = (previous.failures if previous else 0) + 1
    wait = min(maximum_s, initial_s * 2 ** (failures - 1))
    return StartFailure(reason, failures, now + wait, code)
