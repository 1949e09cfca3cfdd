"""When to warn about the embedded broker, from successive readings (pure logic).

The embedded broker keeps every record batch in memory and, on every fetch that finds
new data in a partition, lists all the batches that partition ever held. Under load the
request path's consumers fetch with the busy wait (``MODELBUS_KAFKA_FETCH_MAX_WAIT_BUSY_MS``;
``modelbus_delivery.fetch_pacing``). In the soak bench the answered rate held while one
listing of the busiest partition took less than that wait, and fell steeply once it took
more: that is the wall. The watch warns before it (the slowest fetch past a share of the
wait, twice in a row), again at it, and when the broker's memory passes a limit, each time
saying what to do; a warning is repeated while it lasts and a recovery is told once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

WHAT_TO_DO = (
    "Use --external-kafka HOST:PORT (a real Kafka: retention, no such slowdown), or restart "
    "modelbus up while nothing is in flight: the embedded broker starts empty (requests "
    "and answers in flight are lost; the catalog is rebuilt from the registry)."
)


MEMORY_CLEAR = 0.9  # a memory warning ends below this share of the limit


class FetchState(IntEnum):
    OK = 0
    SLOWING = 1
    AT_WALL = 2


@dataclass(frozen=True)
class BrokerLimits:
    """What the readings are held against."""

    fetch_wall_s: float  # the services' fetch wait under load: past it, answers stall
    fetch_warn_s: float  # warn from here on
    memory_warn_bytes: int
    confirm_readings: int = 2  # a fetch state changes after this many readings agree
    repeat_s: float = 600.0  # how often a lasting warning is said again


@dataclass(frozen=True)
class BrokerReading:
    """One look at the broker: its slowest partition fetch and its resident memory
    (None: not measured this time, e.g. the broker was restarting)."""

    fetch_s: float | None = None
    where: str | None = None  # topic[partition] of the slowest fetch
    rss_bytes: int | None = None


@dataclass(frozen=True)
class Notice:
    """Something to tell the user: a log event and the line a person reads."""

    event: str
    cause: Literal["fetch", "memory"]
    warning: bool
    text: str
    fields: dict[str, object] = field(default_factory=dict)


@dataclass
class _Cause:
    state: int = 0
    pending: int = 0
    streak: int = 0
    said_at: float | None = None


class BrokerWatchPolicy:
    """Turns readings into notices and the warning flags a metric shows."""

    def __init__(self, limits: BrokerLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._fetch = _Cause()
        self._memory = _Cause()
        self.last = BrokerReading()

    @property
    def fetch_state(self) -> FetchState:
        return FetchState(self._fetch.state)

    @property
    def memory_high(self) -> bool:
        return self._memory.state == 1

    def warnings(self) -> dict[str, bool]:
        """Per cause, whether a warning is in force (what the metric shows)."""
        return {"fetch": self._fetch.state > 0, "memory": self.memory_high}

    def observe(self, reading: BrokerReading) -> list[Notice]:
        """The notices this reading calls for (new states, recoveries, repeats)."""
        now = self._clock()
        self.last = reading
        notices: list[Notice] = []
        if reading.fetch_s is not None:
            changed = self._settle(self._fetch, self._fetch_level(reading.fetch_s),
                                   self.limits.confirm_readings)
            notices.extend(self._fetch_notice(reading, now, changed))
        if reading.rss_bytes is not None:
            # Resident memory moves by a few percent between looks: once past the limit,
            # the warning lasts until memory is clearly below it.
            limit = self.limits.memory_warn_bytes * (MEMORY_CLEAR if self.memory_high else 1)
            level = 1 if reading.rss_bytes >= limit else 0
            changed = self._settle(self._memory, level, 1)
            notices.extend(self._memory_notice(reading, now, changed))
        return notices

    def _fetch_level(self, seconds: float) -> int:
        if seconds >= self.limits.fetch_wall_s:
            return FetchState.AT_WALL
        return FetchState.SLOWING if seconds >= self.limits.fetch_warn_s else FetchState.OK

    @staticmethod
    def _settle(cause: _Cause, level: int, confirm: int) -> bool:
        """Move ``cause`` to ``level`` once ``confirm`` readings in a row saw it."""
        if level == cause.state:
            cause.streak = 0
            return False
        cause.streak = cause.streak + 1 if level == cause.pending else 1
        cause.pending = level
        if cause.streak < confirm:
            return False
        cause.state, cause.streak = level, 0
        return True

    def _due(self, cause: _Cause, now: float, changed: bool) -> bool:
        if changed:
            cause.said_at = now if cause.state else None
            return True
        if cause.state and cause.said_at is not None and (
            now - cause.said_at >= self.limits.repeat_s
        ):
            cause.said_at = now
            return True
        return False

    def _fetch_notice(self, reading: BrokerReading, now: float, changed: bool) -> list[Notice]:
        if not self._due(self._fetch, now, changed):
            return []
        assert reading.fetch_s is not None
        ms, wall_ms = reading.fetch_s * 1e3, self.limits.fetch_wall_s * 1e3
        fields: dict[str, object] = {"fetch_ms": round(ms, 2), "partition": reading.where,
                                     "fetch_wait_ms": round(wall_ms, 2)}
        state = self.fetch_state
        if state is FetchState.OK:
            return [Notice("embedded_broker_recovered", "fetch", False,
                           f"the embedded broker fetches fast again ({ms:.1f} ms at most)",
                           fields)]
        where = reading.where or "a partition"
        if state is FetchState.AT_WALL:
            text = (f"the embedded broker is at its limit: one fetch of {where} takes "
                    f"{ms:.1f} ms, more than the {wall_ms:g} ms the services wait under load: "
                    f"answers slow down and stall. {WHAT_TO_DO}")
            return [Notice("embedded_broker_at_limit", "fetch", True, text, fields)]
        text = (f"the embedded broker is slowing down: one fetch of {where} takes {ms:.1f} ms "
                f"of the {wall_ms:g} ms the services wait under load (it lists every record "
                f"batch the partition ever held); past that, answers slow down and stall. "
                f"{WHAT_TO_DO}")
        return [Notice("embedded_broker_slowing", "fetch", True, text, fields)]

    def _memory_notice(self, reading: BrokerReading, now: float, changed: bool) -> list[Notice]:
        if not self._due(self._memory, now, changed):
            return []
        assert reading.rss_bytes is not None
        mb, limit_mb = reading.rss_bytes / 1e6, self.limits.memory_warn_bytes / 1e6
        fields: dict[str, object] = {"resident_mb": round(mb, 1), "limit_mb": round(limit_mb, 1)}
        if not self.memory_high:
            return [Notice("embedded_broker_memory_ok", "memory", False,
                           f"the embedded broker holds {mb:,.0f} MB again", fields)]
        text = (f"the embedded broker holds {mb:,.0f} MB (limit {limit_mb:,.0f} MB) and keeps "
                f"growing: it keeps every record and ignores retention. {WHAT_TO_DO}")
        return [Notice("embedded_broker_memory_high", "memory", True, text, fields)]
