"""Keep a set of components running: restart whatever exits, with exponential backoff."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from modelbus.stack.errors import StackError
from modelbus.stack.process import ChildProcess
from modelbus_delivery.logs import get_logger

log = get_logger("stack")


class Component(Protocol):
    """Anything the supervisor can start, watch and stop (a service, the broker, MLflow)."""

    def start(self) -> None: ...

    def poll(self) -> int | None: ...

    def stop(self) -> None: ...


class ServiceComponent:
    """A modelbus service (``python -m modelbus <name>``) as a supervised child process."""

    def __init__(self, name: str, process: ChildProcess, stop_timeout: float = 10.0) -> None:
        self.name = name
        self.process = process
        self.stop_timeout = stop_timeout

    def start(self) -> None:
        self.process.start()
        log.info("service_started", service=self.name, pid=self.process.pid)

    def poll(self) -> int | None:
        return self.process.poll()

    def request_stop(self) -> None:
        self.process.request_stop()

    def stop(self) -> None:
        self.process.terminate(self.stop_timeout)


@dataclass
class Backoff:
    """Restart delays: ``initial_s`` doubling up to ``max_s``; reset after a stable run."""

    initial_s: float = 1.0
    max_s: float = 30.0
    stable_after_s: float = 60.0

    def next_delay(self, previous_s: float | None, ran_for_s: float) -> float:
        if previous_s is None or ran_for_s >= self.stable_after_s:
            return self.initial_s
        return min(previous_s * 2, self.max_s)


@dataclass
class _Slot:
    name: str
    component: Component
    started_at: float = 0.0
    restart_at: float | None = None
    delay_s: float | None = None
    restarts: int = 0
    history: list[int] = field(default_factory=list)


class Supervisor:
    """Starts components in order, restarts any that exit, stops them in reverse order.

    ``tick()`` does one round of checks and never blocks longer than a restart takes;
    the caller loops on it until asked to stop.
    """

    def __init__(
        self, backoff: Backoff | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._slots: list[_Slot] = []

    def add(self, name: str, component: Component, *, start: bool = True) -> None:
        """Register ``component``; start it now unless ``start`` is False (already running)."""
        # Registered before starting, so a start that fails half-way is still stopped.
        self._slots.append(_Slot(name, component, started_at=self._clock()))
        if start:
            component.start()

    def restarts(self, name: str) -> int:
        return next(s.restarts for s in self._slots if s.name == name)

    def tick(self) -> None:
        now = self._clock()
        for slot in self._slots:
            if slot.restart_at is None:
                code = slot.component.poll()
                if code is None:
                    continue
                slot.history.append(code)
                slot.delay_s = self.backoff.next_delay(slot.delay_s, now - slot.started_at)
                slot.restart_at = now + slot.delay_s
                log.warning(
                    "component_exited",
                    component=slot.name,
                    exit_code=code,
                    restart_in_s=slot.delay_s,
                )
            elif now >= slot.restart_at:
                self._restart(slot)

    def _restart(self, slot: _Slot) -> None:
        slot.restarts += 1
        log.info("component_restarting", component=slot.name, attempt=slot.restarts)
        try:
            slot.component.start()
        except (StackError, OSError) as exc:
            slot.delay_s = min((slot.delay_s or self.backoff.initial_s) * 2, self.backoff.max_s)
            slot.restart_at = self._clock() + slot.delay_s
            log.error(
                "component_restart_failed",
                component=slot.name,
                error=str(exc),
                restart_in_s=slot.delay_s,
            )
            return
        slot.started_at = self._clock()
        slot.restart_at = None

    def stop_all(self) -> None:
        """Stop every component, newest first; services get SIGTERM together up front."""
        for slot in self._slots:
            if isinstance(slot.component, ServiceComponent):
                slot.component.request_stop()
        for slot in reversed(self._slots):
            try:
                slot.component.stop()
            except Exception as exc:  # keep stopping the others whatever happens
                log.error("component_stop_failed", component=slot.name, error=str(exc))
        self._slots.clear()
