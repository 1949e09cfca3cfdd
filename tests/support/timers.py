"""A clock with timers that moves only when a test moves it: timed logic without waiting."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True)
class ManualTimer:
    """One scheduled callback; ``cancel`` as an event loop's ``TimerHandle``."""

    when: float
    order: int
    callback: Callable[..., object] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class ManualTimers:
    """``call_later`` as the event loop's, on a clock that starts at 0 and moves by
    ``advance``; callbacks that fall due run in the order of their times, then of their
    scheduling, inside ``advance`` (a callback may schedule another: it runs too if due)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[ManualTimer] = []
        self._order = itertools.count()

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> ManualTimer:
        timer = ManualTimer(self.now + delay, next(self._order), callback, args)
        self._timers.append(timer)
        return timer

    def pending(self) -> list[float]:
        """The times of the timers not yet run nor cancelled, earliest first."""
        return sorted(t.when for t in self._timers if not t.cancelled)

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, running every timer that falls due on the way."""
        until = self.now + seconds
        while due := [t for t in self._timers if not t.cancelled and t.when <= until]:
            timer = min(due)
            self._timers.remove(timer)
            self.now = timer.when
            timer.callback(*timer.args)
        self.now = until
