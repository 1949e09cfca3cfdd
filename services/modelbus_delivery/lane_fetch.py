"""One turn's fetch of a consumer that reads two lanes: interactive records first, bulk
records no more than the room ``LanePolicy`` gives them.

While the bulk lane has no room its partitions are left unread (what was fetched stays
buffered); a consumer reading lanes holds back its next fetch from a broker for only
``LANE_PREFETCH_BACKOFF_S`` while such records wait (``apply_prefetch_backoff``), so that
they never delay interactive records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from .lane_policy import LanePolicy
from .poison import Batch, OnPoison, getmany_skipping_poison
from .records import RECORDS_PER_TURN

# How long a fetch waits while the bulk lane has no room: bulk records finishing are
# noticed this soon.
LANE_POLL_MS = 10
# How long fetched records not yet taken hold back the next fetch from their broker.
LANE_PREFETCH_BACKOFF_S = 0.002


class LaneFetch:
    """Fetches a turn's records for a runtime whose ``bulk_topics`` are the bulk lane."""

    def __init__(self, bulk_topics: frozenset[str], policy: LanePolicy) -> None:
        self.bulk_topics = bulk_topics
        self.policy = policy
        self._split: tuple[
            frozenset[TopicPartition], list[TopicPartition], list[TopicPartition]
        ] | None = None

    def partitions(
        self, consumer: AIOKafkaConsumer
    ) -> tuple[list[TopicPartition], list[TopicPartition]]:
        """The assigned partitions of the interactive and of the bulk lane (computed again
        only when the assignment changed)."""
        assigned = consumer.assignment()
        if self._split is None or self._split[0] != assigned:
            self._split = (
                frozenset(assigned),
                [tp for tp in assigned if tp.topic not in self.bulk_topics],
                [tp for tp in assigned if tp.topic in self.bulk_topics],
            )
        return self._split[1], self._split[2]

    async def fetch(
        self, consumer: AIOKafkaConsumer, free: int, in_flight: int, bulk_in_flight: int,
        expected: Mapping[TopicPartition, int], on_poison: OnPoison,
        capacity: asyncio.Event,
    ) -> Batch:
        """At most ``free`` records (and ``RECORDS_PER_TURN``); ``capacity`` is set when a
        record in flight finishes."""
        take = max(min(free, RECORDS_PER_TURN), 1)
        wait_ms = 200 if free > 0 else 0
        interactive_in_flight = in_flight - bulk_in_flight
        room = self.policy.bulk_room(interactive_in_flight, bulk_in_flight)
        interactive, bulk = self.partitions(consumer)
        if room <= 0:  # only interactive records may start: read their partitions alone
            if not interactive:
                capacity.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(capacity.wait(), LANE_POLL_MS / 1000)
                return {}
            return await getmany_skipping_poison(
                consumer, expected, on_poison, partitions=interactive,
                timeout_ms=min(wait_ms, LANE_POLL_MS), max_records=take,
            )
        if self.policy.busy(interactive_in_flight) and interactive:
            # Interactive records waiting are taken before any bulk one.
            batch = await getmany_skipping_poison(
                consumer, expected, on_poison, partitions=interactive,
                timeout_ms=0, max_records=take,
            )
            if got := sum(len(records) for records in batch.values()):
                if bulk and take > got:
                    batch.update(await getmany_skipping_poison(
                        consumer, expected, on_poison, partitions=bulk,
                        timeout_ms=0, max_records=min(take - got, room),
                    ))
                return batch
        # Both lanes, bulk records no more than their room (the total is bounded by it).
        return await getmany_skipping_poison(
            consumer, expected, on_poison, timeout_ms=wait_ms, max_records=min(take, room),
        )
