"""The sign of life of a client's own reply topics: a ``status: alive`` record.

A client with a reply topic of its own (``PREFIX replies.<id>``) writes one to it when the
topic is made and then every ``client_reply_heartbeat_s``. A client that is gone stops
writing them; ``modelbus topics prune-replies`` deletes only the private reply topics whose
newest record is older than its ``--idle``, so a live client's topic, answered or not,
always has a recent one. Readers of the topic (the client's own ``ResultsListener``) take
a record whose ``status`` is neither ``ok`` nor ``error`` for a notice and pass it by.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from modelbus_contract.inference import ALIVE_STATUS
from modelbus_delivery.closing import cancel_and_wait
from modelbus_delivery.logs import get_logger
from modelbus_delivery.writer import TopicWriter

log = get_logger("client")

ALIVE_HEADERS = {"status": ALIVE_STATUS}  # contract: ReplyAliveHeaders


class ReplyHeartbeat:
    """Writes the alive record to ``topics()`` now and every ``interval_s`` (module doc)."""

    def __init__(
        self, writer: TopicWriter, topics: Callable[[], list[str]], interval_s: float
    ) -> None:
        self._writer = writer
        self._topics = topics
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="modelbus-reply-heartbeat")

    async def announce(self, topic: str) -> None:
        """One alive record to ``topic`` (a topic just made); a failure is logged."""
        try:
            await self._writer.send(topic, None, b"", ALIVE_HEADERS)
            self.sent += 1
        except Exception as exc:  # a missed sign of life is logged; the next one follows
            log.warning("reply_heartbeat_failed", topic=topic, error=repr(exc)[:300])

    async def _run(self) -> None:
        while True:
            for topic in self._topics():
                await self.announce(topic)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
