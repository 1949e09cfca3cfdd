"""Exponential backoff with jitter for reconnecting to the broker and the registry."""

from __future__ import annotations

import random

from modelbus_contract.settings import ModelbusSettings


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``; ``reset`` after a success."""

    def __init__(self, initial: float = 1.0, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._attempt = 0

    def next_delay(self) -> float:
        self._attempt += 1
        return self.delay(self._attempt)

    def delay(self, attempt: int) -> float:
        """The delay after the ``attempt``-th failure (1-based), without counting it."""
        base = min(self.maximum, self.initial * (2 ** max(attempt - 1, 0)))
        return float(base * random.uniform(0.8, 1.0))

    def reset(self) -> None:
        self._attempt = 0

    @property
    def failures(self) -> int:
        return self._attempt


def backoff_for(settings: ModelbusSettings) -> Backoff:
    """A fresh reconnect backoff (Kafka, MLflow) as configured."""
    return Backoff(settings.retry_initial_s, settings.retry_max_s)
