"""Which offsets may be committed while requests finish out of order (pure logic).

A partition's committable offset is the lowest offset still in flight, or one past the
highest finished when none is: never beyond a request whose answer is not yet published.
"""

from __future__ import annotations

from collections.abc import Hashable


class OffsetTracker:
    """In-flight offsets per partition and the commit position they allow."""

    def __init__(self) -> None:
        self._in_flight: dict[Hashable, set[int]] = {}
        self._next: dict[Hashable, int] = {}
        self._committed: dict[Hashable, int] = {}

    def started(self, partition: Hashable, offset: int) -> None:
        self._in_flight.setdefault(partition, set()).add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def finished(self, partition: Hashable, offset: int) -> None:
        pending = self._in_flight.get(partition)
        if pending is not None:
            pending.discard(offset)

    def next_offsets(self) -> dict[Hashable, int]:
        """Per partition, the offset after the last one started."""
        return dict(self._next)

    def in_flight(self) -> int:
        return sum(len(s) for s in self._in_flight.values())

    def committable(self) -> dict[Hashable, int]:
        """Positions that moved since the last ``mark_committed``."""
        out = {}
        for partition in self._next:
            position = self.position(partition)
            if position is not None and position > self._committed.get(partition, -1):
                out[partition] = position
        return out

    def position(self, partition: Hashable) -> int | None:
        """Where ``partition`` would be committed now: its lowest offset in flight, else
        one past the last started (None: nothing started since it was assigned)."""
        pending = self._in_flight.get(partition)
        if pending:
            return min(pending)
        return self._next.get(partition)

    def last_committed(self, partition: Hashable) -> int | None:
        """The position this tracker last committed for ``partition`` (None: none yet)."""
        return self._committed.get(partition)

    def mark_committed(self, positions: dict[Hashable, int]) -> None:
        self._committed.update(positions)

    def forget(self, partitions: list[Hashable]) -> None:
        """Partitions taken away by a rebalance: their in-flight work is re-delivered."""
        for p in partitions:
            self._in_flight.pop(p, None)
            self._next.pop(p, None)
            self._committed.pop(p, None)
