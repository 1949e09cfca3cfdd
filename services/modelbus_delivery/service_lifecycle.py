"""The life of a modelbus service on Kafka: the one start, guard, readiness and stop
sequence the worker, the catalog and discovery share.

Start, each step retried until the broker answers: the service's topics are made (those
missing), the writer connects, the catalog view reads the catalog (a service with one),
the consumer joins its group (a service with one); then the topic guard watches the
topics. A broker that comes back without them (an in-memory one restarted) gets them
again; the consumer then sees them as they are now, the view reads the catalog again, and
the service repairs what is its own. Stop is the reverse: the guard, the consumer (the
records in flight drained and committed), the view, the parts that still publish, the
writer.

Every part is given (``modelbus.wiring`` builds them); a service adds only what is its own
around ``start`` and ``stop``, and its own readiness checks beside ``kafka_ready``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from .ops_http import BrokerWatch, kafka_ready
from .retry import Backoff
from .topics import retry_until_connected

OnLost = Callable[[], Awaitable[None]]


class Connection(Protocol):
    """A part that connects to the broker and disconnects (the writer)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class View(Connection, Protocol):
    """A service's copy of the catalog topic (``CatalogView``)."""

    async def reread(self) -> None: ...


class Consumer(Protocol):
    """The consumer-group runtime as the life cycle drives it (``DeliveryRuntime``)."""

    @property
    def running(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self, drain_timeout_s: float | None = None) -> None: ...

    async def refresh_metadata(self) -> None: ...


class Guard(BrokerWatch, Protocol):
    """Watches the service's topics and repairs them (``TopicGuard``)."""

    def start(self, on_lost: OnLost | None = None) -> None: ...

    async def stop(self) -> None: ...


class Publisher(Protocol):
    """A part that publishes through the writer: closed before the writer stops."""

    async def close(self) -> None: ...


class Service(Protocol):
    """What ``serve_until`` runs."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ServiceLifecycle:
    """Starts, guards, checks and stops a service's Kafka parts in the one order (module doc).

    ``ensure_topics`` makes the service's topics that are missing; the guard watches the
    same ones.
    """

    def __init__(
        self, name: str, ensure_topics: Callable[[], Awaitable[None]], writer: Connection,
        guard: Guard, backoff: Backoff, *, consumer: Consumer | None = None,
        view: View | None = None, publishers: Sequence[Publisher] = (),
        bootstrap_servers: str = "",
    ) -> None:
        self.name = name
        self._ensure_topics = ensure_topics
        self._writer = writer
        self.guard = guard
        self._backoff = backoff
        self._consumer = consumer
        self._view = view
        self._publishers = tuple(publishers)
        self._servers = bootstrap_servers
        self._on_topics_lost: OnLost | None = None

    async def start(self, on_topics_lost: OnLost | None = None) -> None:
        """Connect every part (each retried until the broker answers), then guard the topics;
        ``on_topics_lost``: the service's own repair once they were made again."""
        await self._connect(self._ensure_topics)
        await self._connect(self._writer.start)
        if self._view is not None:
            await self._connect(self._view.start)
        if self._consumer is not None:
            await self._connect(self._consumer.start)
        self._on_topics_lost = on_topics_lost
        self.guard.start(self._topics_lost)

    async def stop(self, drain_timeout_s: float | None = None) -> None:
        """Stop guarding, stop consuming (the records in flight finish, for at most
        ``drain_timeout_s``, default the consumer's, and are committed), then disconnect."""
        await self.guard.stop()
        if self._consumer is not None:
            await self._consumer.stop(drain_timeout_s)
        if self._view is not None:
            await self._view.stop()
        for publisher in self._publishers:
            await publisher.close()
        await self._writer.stop()

    def kafka_ready(self, loop_running: bool = True) -> bool:
        """The ``kafka`` readiness check: the guard reached the broker lately, the consumer
        (if any) fetches and the service's own loop (``loop_running``) runs."""
        consuming = self._consumer is None or self._consumer.running
        return kafka_ready(self.guard, consuming and loop_running)

    async def _connect(self, step: Callable[[], Awaitable[None]]) -> None:
        await retry_until_connected(
            "kafka", step, self._backoff, service=self.name, bootstrap_servers=self._servers
        )

    async def _topics_lost(self) -> None:
        """The broker lost the topics and they were made again: see them as they are now."""
        if self._consumer is not None:
            await self._consumer.refresh_metadata()
        if self._view is not None:
            await self._view.reread()
        if self._on_topics_lost is not None:
            await self._on_topics_lost()


async def serve_until(service: Service, ended: Callable[[], Awaitable[None]]) -> None:
    """Start ``service``, wait until ``ended`` returns (or raises: a loop that failed), and
    stop the service however that ended."""
    await service.start()
    try:
        await ended()
    finally:
        await service.stop()
