"""Reading a version's facts from the registry, waiting out its outages.

The blocking reader (the MLflow adapter) runs off the event loop. A registry that cannot be
reached or refuses the credentials (``RegistryUnreachable``) is waited for with backoff as
long as it takes: the version's entry waits with it rather than being published as
invalid. Any other failure is tried ``MAX_UNEXPECTED_FAILURES`` times before the facts say
that reading failed, so one bad version cannot block its partition forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from modelbus_contract.messages import DiscoveryEvent
from modelbus_contract.redact import redact
from modelbus_delivery.logs import get_logger
from modelbus_delivery.retry import Backoff

from .entry import ModelFacts
from .errors import ModelUnreadable, RegistryUnreachable

log = get_logger("catalog")

MAX_UNEXPECTED_FAILURES = 5

Sleep = Callable[[float], Awaitable[None]]


class ModelReader(Protocol):
    """Port: reads a version's MLmodel facts (blocking; called off the event loop). Raises
    ``ModelUnreadable``, ``RegistryUnreachable``, or anything else for other failures."""

    def read(self, name: str, version: str) -> ModelFacts: ...


class RetryingReader:
    """Reads facts through ``reader``; ``backoff`` makes each read's fresh backoff."""

    def __init__(
        self, reader: ModelReader, backoff: Callable[[], Backoff], *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._reader = reader
        self._backoff = backoff
        self._sleep = sleep
        self.last_read_ok: bool | None = None  # the last read reached the registry

    async def read(self, event: DiscoveryEvent) -> ModelFacts:
        """The version's facts; a version that cannot be read gets facts that say why."""
        backoff = self._backoff()
        unexpected = 0
        while True:
            try:
                facts = await asyncio.to_thread(self._reader.read, event.name, event.version)
                self.last_read_ok = True
                return facts
            except ModelUnreadable as exc:
                self.last_read_ok = True
                return ModelFacts(problems=[redact(f"model files unreadable: {exc}")])
            except RegistryUnreachable as exc:
                self.last_read_ok = False
                failure: Exception = exc
            except Exception as exc:
                self.last_read_ok = True
                unexpected += 1
                if unexpected >= MAX_UNEXPECTED_FAILURES:
                    return ModelFacts(problems=[redact(f"reading the model failed: {exc}")])
                failure = exc
            delay = backoff.next_delay()
            log.warning(
                "registry_read_failed", error=f"{type(failure).__name__}: {str(failure)[:300]}",
                unreachable=isinstance(failure, RegistryUnreachable), retry_in_s=round(delay, 2),
            )
            await self._sleep(delay)
