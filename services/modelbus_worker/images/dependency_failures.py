"""Dependency sets whose wheels cannot be resolved, remembered with a growing backoff.

Keyed like the wheelhouse (normalized requirements, interpreter and index settings), so
every model version with the same requirements fails fast — no ``pip download`` per
request — until the wait is over; then one resolution is tried again. The memory lives in
the worker process (a restart tries once more).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from modelbus_contract.errors import ModelUnavailable
from modelbus_worker.failures import StartFailure, remember_failure


class DependencyFailures:
    """Remembered failures of dependency sets (thread-safe: builds run in threads)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failed: dict[str, StartFailure] = {}
        self._lock = threading.Lock()

    def record(
        self, key: str, message: str, initial_s: float, maximum_s: float
    ) -> StartFailure:
        """One more failed resolution of ``key``: the next is allowed after a longer wait."""
        with self._lock:
            failure = remember_failure(
                self._failed.get(key), message, self._clock(), initial_s, maximum_s,
                code=ModelUnavailable.code,
            )
            self._failed[key] = failure
            return failure

    def check(self, key: str) -> None:
        """Raise the remembered ModelUnavailable while ``key`` may not be resolved again."""
        with self._lock:
            failure = self._failed.get(key)
        if failure is None:
            return
        wait = failure.retry_at - self._clock()
        if wait > 0:
            raise ModelUnavailable(
                f"{failure.reason}\n(remembered: this dependency set failed to resolve "
                f"{failure.failures} time(s); next attempt in {wait:.0f}s)"
            )

    def forget(self, key: str) -> None:
        with self._lock:
            self._failed.pop(key, None)


# The worker's memory (one per process), shared by every start.
DEPENDENCY_FAILURES = DependencyFailures()
