"""How many bulk-lane records a consumer may start now (pure: counts and a clock in).

Interactive records are always taken first: the bulk lane never holds more than its share
of the in-flight budget (``bulk_share``), so there is always room for an interactive
record. While interactive work runs, or ran less than ``hold_s`` ago (interactive callers
often send again soon), the bulk lane is held to its minimum share (``bulk_min_share``, at
least one record): slowed, never starved.

``CURRENT_LANE`` tells the code handling a record which lane it came from (the runtime
sets it for each record's task), e.g. so that a batcher can put interactive requests
first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from modelbus_contract.lanes import Lane

CURRENT_LANE: ContextVar[Lane] = ContextVar("modelbus_lane", default="interactive")


@dataclass(frozen=True)
class LaneShares:
    """The bulk lane's shares of an in-flight budget of ``budget`` records."""

    budget: int
    bulk_share: float = 0.75
    bulk_min_share: float = 0.05
    hold_s: float = 0.25

    @property
    def bulk_max(self) -> int:
        """Bulk records in flight at most while interactive work is quiet: the share, at
        least one, and one less than the budget when the budget allows it."""
        most = self.budget - 1 if self.budget > 1 else 1
        return min(max(math.floor(self.budget * self.bulk_share), 1), most)

    @property
    def bulk_min(self) -> int:
        """Bulk records in flight at most while interactive work waits or runs."""
        return min(max(math.floor(self.budget * self.bulk_min_share), 1), self.bulk_max)


class LanePolicy:
    """Decides the bulk lane's room from the records in flight and recent interactive work."""

    def __init__(self, shares: LaneShares, clock: Callable[[], float] = time.monotonic) -> None:
        self.shares = shares
        self._clock = clock
        self._last_interactive: float | None = None

    def interactive_seen(self) -> None:
        """An interactive record started or finished now."""
        self._last_interactive = self._clock()

    def busy(self, interactive_in_flight: int) -> bool:
        """Whether interactive work runs or ran within the hold time."""
        if interactive_in_flight > 0:
            return True
        last = self._last_interactive
        return last is not None and self._clock() - last < self.shares.hold_s

    def bulk_cap(self, interactive_in_flight: int) -> int:
        """The most bulk records that may be in flight now."""
        shares = self.shares
        return shares.bulk_min if self.busy(interactive_in_flight) else shares.bulk_max

    def bulk_room(self, interactive_in_flight: int, bulk_in_flight: int) -> int:
        """How many more bulk records may start now (0: none)."""
        return max(self.bulk_cap(interactive_in_flight) - bulk_in_flight, 0)
