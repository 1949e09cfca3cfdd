"""Progress notices of a request whose model version is still being prepared (pure logic).

A worker that has to fetch a version's files, build its images, start its container or
load the model first sends notices (``status: preparing``) for requests that asked for
them; each says when the next one comes at the latest. A caller's wait for the result is
extended by each notice, so a long preparation never ends in a blind client-side timeout.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Sent on every request: the worker sends notices only while the version is prepared.
NOTIFY_PROGRESS_HEADER = "notify_progress"
# After a notice, the wait lasts at least this many notice intervals (one may be late).
INTERVALS_OF_GRACE = 2.0


@dataclass(frozen=True)
class Progress:
    """The model version of a request is being prepared: ``step`` for ``elapsed_s`` so far."""

    model: str
    version: str
    step: str
    elapsed_s: float
    notice_interval_s: float

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Progress:
        return cls(
            model=headers.get("model", ""),
            version=headers.get("model_version", ""),
            step=headers.get("step", "") or "preparing",
            elapsed_s=_seconds(headers.get("elapsed_ms", "")),
            notice_interval_s=_seconds(headers.get("notice_interval_ms", "")),
        )

    def describe(self) -> str:
        """One line for a person: ``m/3 is being prepared: images (35 s so far)``."""
        return (f"{self.model}/{self.version} is being prepared: {self.step} "
                f"({self.elapsed_s:.0f} s so far)")


ProgressListener = Callable[[Progress], None]


def wait_after_notice(wait_s: float, progress: Progress) -> float:
    """How much longer to wait for the result once a notice arrived: the caller's whole
    wait again, or more when notices come less often than that."""
    return max(wait_s, INTERVALS_OF_GRACE * progress.notice_interval_s)


def _seconds(millis: str) -> float:
    try:
        value = float(millis) / 1000
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0
