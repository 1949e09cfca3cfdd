"""How long a request-path consumer lets the broker wait for records: short when they come
rarely, longer when they stream.

Every fetch that finds new records costs the embedded broker (Tansu, memory storage) a listing
of all record batches the partition ever held, and it answers each fetch only after the wait
the consumer asked for. A consumer that asks for 5 ms therefore makes the broker list the
partition up to 200 times a second, whatever the load; under steady load that listing is where
the broker's time goes, and it grows with every batch written. Asking for a longer wait while
records stream (``busy_ms``) makes each fetch carry more records and the broker list less
often, at little cost to a stream's throughput (a fetch is no shorter than its wait anyway);
a request that comes alone keeps the short wait (``quiet_ms``) and its latency. A Kafka
cluster answers a fetch as soon as it has records, so there the longer wait costs nothing.

A reader of answers knows when it awaits one. While it does, and answers come more rarely
than one per quiet wait, it asks for ``awaiting_ms`` instead of ``quiet_ms``: the embedded
broker hands a record over only when the fetch it arrived during ends, so an answer waits
for its reader half a fetch wait on average (2.5 ms at 5 ms, 0.5 ms at 1 ms). The shorter
wait costs fetches only while a caller waits; an idle reader polls as seldom as before, and
one whose answers come often (where a fetch of the quiet wait carries one anyway) keeps the
quiet wait and its CPU.

The decision is pure (``FetchPacing``, with an injected clock); ``apply_fetch_wait`` sets it
on an aiokafka consumer, whose fetcher reads it for every fetch it sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelbus_contract.settings import ModelbusSettings

from .logs import get_logger

log = get_logger("delivery")
WINDOW_S = 1.0  # the arrival rate is judged over windows of this length


@dataclass
class FetchPacing:
    """The fetch wait, from the rate at which a consumer receives records.

    The wait becomes ``busy_ms`` once a window of ``WINDOW_S`` saw at least ``busy_rate``
    records per second, and ``quiet_ms`` again once one saw less than half of it.
    ``busy_ms <= quiet_ms`` (or ``busy_rate <= 0``) keeps the wait at ``quiet_ms``.
    With ``awaiting_ms``, the wait is that (at most ``quiet_ms``) while the reader says it
    awaits records (``await_records``) and the last window saw fewer than one record per
    quiet wait (``1000 / quiet_ms`` a second).
    """

    quiet_ms: int
    busy_ms: int
    busy_rate: float
    clock: Callable[[], float] = time.monotonic
    # The wait while the reader awaits records it asked for (None: ``quiet_ms``).
    awaiting_ms: int | None = None
    busy: bool = False
    awaiting: bool = False
    frequent: bool = False  # the last window saw a record per quiet wait or more
    _count: int = 0
    _since: float | None = field(default=None, repr=False)

    @classmethod
    def request_path(cls, settings: ModelbusSettings) -> FetchPacing:
        """The pacing of the worker's request consumer."""
        return cls(settings.kafka_fetch_max_wait_ms, settings.kafka_fetch_max_wait_busy_ms,
                   settings.kafka_fetch_busy_rate)

    @classmethod
    def answers(cls, settings: ModelbusSettings) -> FetchPacing:
        """The pacing of a client's answer reader: the request path's, and the awaiting
        wait while a request of its own is unanswered."""
        return cls(settings.kafka_fetch_max_wait_ms, settings.kafka_fetch_max_wait_busy_ms,
                   settings.kafka_fetch_busy_rate,
                   awaiting_ms=settings.kafka_fetch_max_wait_awaiting_ms)

    @property
    def enabled(self) -> bool:
        return self.busy_ms > self.quiet_ms and self.busy_rate > 0

    @property
    def frequent_rate(self) -> float:
        """Records a second from which a fetch of the quiet wait carries one anyway."""
        return 1000 / max(self.quiet_ms, 1)

    @property
    def wait_ms(self) -> int:
        if self.busy:
            return self.busy_ms
        if self.awaiting and self.awaiting_ms is not None and not self.frequent:
            return min(self.awaiting_ms, self.quiet_ms)
        return self.quiet_ms

    def reset(self) -> None:
        """Back to the quiet wait (a new consumer starts with it)."""
        self.busy = self.awaiting = self.frequent = False
        self._count, self._since = 0, None

    def await_records(self, awaiting: bool) -> int | None:
        """Whether the reader now awaits records; the new wait when it changes, else None."""
        before = self.wait_ms
        self.awaiting = awaiting
        return self._changed_from(before)

    def _changed_from(self, before: int) -> int | None:
        return self.wait_ms if self.wait_ms != before else None

    def received(self, records: int) -> int | None:
        """Count ``records`` just received; the new wait when it changes, else None."""
        if not self.enabled and self.awaiting_ms is None:
            return None
        now = self.clock()
        if self._since is None:
            self._since = now
        self._count += records
        elapsed = now - self._since
        if elapsed < WINDOW_S:
            return None
        rate = self._count / elapsed
        self._count, self._since = 0, now
        before = self.wait_ms
        if self.enabled:
            self.busy = rate >= (self.busy_rate / 2 if self.busy else self.busy_rate)
        self.frequent = rate >= self.frequent_rate
        return self._changed_from(before)


def apply_fetch_wait(consumer: Any, wait_ms: int) -> None:
    """Make ``consumer`` (an ``AIOKafkaConsumer``) ask for ``wait_ms`` from its next fetch.

    aiokafka reads ``fetch_max_wait_ms`` from its fetcher for every request it builds and
    has no public setter; a release that renames it fails here loudly, not silently.
    """
    fetcher = consumer._fetcher
    if not hasattr(fetcher, "_fetch_max_wait_ms"):
        raise RuntimeError("this aiokafka's fetcher has no _fetch_max_wait_ms to pace")
    fetcher._fetch_max_wait_ms = wait_ms


def apply_prefetch_backoff(consumer: Any, seconds: float) -> None:
    """Make ``consumer`` (an ``AIOKafkaConsumer``) hold back its next fetch from a broker
    for at most ``seconds`` while a partition of that broker has fetched records not yet
    taken (aiokafka: 0.1 s). Records left buffered on purpose — a lane waiting for room —
    would otherwise delay every other partition's records by that much.

    aiokafka reads ``_prefetch_backoff`` from its fetcher for every fetch result it keeps
    and has no public setter; a release that renames it fails here loudly, not silently.
    """
    fetcher = consumer._fetcher
    if not hasattr(fetcher, "_prefetch_backoff"):
        raise RuntimeError("this aiokafka's fetcher has no _prefetch_backoff to shorten")
    fetcher._prefetch_backoff = seconds


def pace(
    consumer: Any, pacing: FetchPacing, batch: Mapping[Any, Sequence[Any]], name: str
) -> None:
    """Count the records of one ``getmany`` and change ``consumer``'s wait if it is due."""
    wait = pacing.received(sum(len(records) for records in batch.values()))
    if wait is not None:
        apply_fetch_wait(consumer, wait)
        log.debug("fetch_wait_changed", consumer=name, wait_ms=wait, busy=pacing.busy)
