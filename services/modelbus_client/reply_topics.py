"""A client's reply topics: the one new requests name, and older ones until they are answered.

A client's private reply topic is replaced by a fresh one after ``rotate_after`` requests
(``MODELBUS_CLIENT_REPLY_ROTATE_AFTER``), or once its reader has read answers
``rotate_after_reads`` times (``MODELBUS_CLIENT_REPLY_ROTATE_AFTER_READS``): one request at a
time, each answer is a record batch of its own, and the embedded broker lists every batch of
the partition on each fetch. New requests name the fresh topic in ``reply_to``;
the old topic keeps its reader until every request that named it has its answer (or its
timeout), then the reader stops and the topic is deleted. A broker therefore never holds more
than about ``rotate_after`` answers in one reply partition: the embedded broker keeps every
record it was sent and reads a partition in time growing with its record batches (see the
docs/operations/embedded-broker.md), and deleting the topic is the one way to give that back.

A shared reply topic (the results topic, a ``replies.NAME`` topic) is never rotated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from modelbus_contract.errors import ModelbusError
from modelbus_delivery.closing import cancel_and_wait
from modelbus_delivery.logs import get_logger

from .results_listener import Answer, ClientClosed, NoticeListener, ResultsListener

log = get_logger("client")


class ReplyTopicRequired(ModelbusError):
    """The client may not make a reply topic of its own (``MODELBUS_KAFKA_CREATE_TOPICS=
    false``) and was given no shared one (``MODELBUS_CLIENT_REPLY_TOPIC``)."""

    code = "reply_topic_required"


@dataclass
class RotationCount:
    """When the current reply topic is due for replacement (pure: counts requests, and is
    told how often the current topic's reader read answers)."""

    rotate_after: int  # 0: never by requests
    rotate_after_reads: int = 0  # 0: never by reads
    sent: int = 0
    reads_from: int = 0  # the current reader's reads count from here
    rotating: bool = False
    _reads_when_due: int = 0

    @property
    def enabled(self) -> bool:
        return self.rotate_after > 0 or self.rotate_after_reads > 0

    def sent_one(self, reads: int = 0) -> bool:
        """Count one request (``reads``: the current reader's reads that brought answers so
        far); whether a rotation should start now."""
        self.sent += 1
        if self.rotating:
            return False
        due = (0 < self.rotate_after <= self.sent
               or 0 < self.rotate_after_reads <= reads - self.reads_from)
        if due:
            self.rotating, self._reads_when_due = True, reads
        return due

    def rotated(self) -> None:
        """A rotation is done: a fresh reader, whose reads count from 0."""
        self.sent, self.reads_from, self.rotating = 0, 0, False

    def gave_up(self) -> None:
        """A rotation failed: tried again after another ``rotate_after`` requests or
        ``rotate_after_reads`` reads of the current reader, not at the next request."""
        self.sent, self.reads_from, self.rotating = 0, self._reads_when_due, False


class ReplyTopics:
    """Routes each request's answer through the reply topic it named (see module doc)."""

    def __init__(
        self,
        first_topic: str,
        listen: Callable[[str], ResultsListener],
        *,
        rotate_after: int = 0,
        rotate_after_reads: int = 0,
        next_topic: Callable[[], str] | None = None,
        delete: Callable[[list[str]], Awaitable[None]] | None = None,
        announce: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._count = RotationCount(rotate_after, rotate_after_reads)
        if self._count.enabled and (next_topic is None or delete is None):
            raise ValueError("a rotated reply topic needs next_topic and delete")
        self._listen = listen
        self._next_topic = next_topic
        self._delete = delete
        self._announce = announce  # told of each rotated topic once it is read (a sign of life)
        self.topic = first_topic
        self._current = listen(first_topic)
        self._retiring: dict[str, ResultsListener] = {}  # topic -> its reader, until answered
        self._tasks: set[asyncio.Task[None]] = set()
        self._rotation: asyncio.Task[None] | None = None
        self.rotations = 0

    @property
    def topics(self) -> list[str]:
        """Every reply topic this client reads now (the current one first)."""
        return [self.topic, *self._retiring]

    async def start(self) -> None:
        await self._current.start()
    def expect(
        self, correlation_id: str, on_notice: NoticeListener | None = None
    ) -> tuple[str, asyncio.Future[Answer]]:
        """The topic a new request names in ``reply_to`` and the future of its answer."""
        future = self._current.expect(correlation_id, on_notice)
        topic = self.topic
        if self._count.sent_one(self._current.reads):
            self._rotation = self._spawn(self._rotate(), "modelbus-reply-rotation")
        return topic, future

    def forget(self, correlation_id: str) -> None:
        self._current.forget(correlation_id)
        for listener in self._retiring.values():
            listener.forget(correlation_id)

    def close_waiting(self) -> None:
        for listener in (self._current, *self._retiring.values()):
            listener.close_waiting()

    async def rotated(self) -> None:
        """Return once the replacement under way, if any, is done (or given up)."""
        if self._rotation is not None:
            await asyncio.gather(self._rotation, return_exceptions=True)

    async def settled(self) -> None:
        """Return once no rotation or retirement is under way (a retirement waits for the
        last answer on its topic)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Stop every reader (never raising); the topics are left for ``delete_all``."""
        self.close_waiting()
        tasks, self._tasks = list(self._tasks), set()
        await cancel_and_wait(*tasks)
        await asyncio.gather(
            *(listener.stop() for listener in (self._current, *self._retiring.values()))
        )

    # -- rotation --------------------------------------------------------------------

    def _spawn(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _rotate(self) -> None:
        assert self._next_topic is not None
        topic = self._next_topic()
        fresh = self._listen(topic)
        try:
            await fresh.start()
        except ClientClosed:
            return
        except Exception as exc:  # the current topic keeps serving; tried again later
            self._count.gave_up()
            log.warning("reply_topic_rotation_failed", topic=topic, error=repr(exc)[:300])
            await fresh.stop()
            return
        old_topic, old = self.topic, self._current
        self.topic, self._current = topic, fresh
        self._count.rotated()
        self.rotations += 1
        self._retiring[old_topic] = old
        log.info("reply_topic_rotated", old=old_topic, new=topic,
                 still_waiting=old.waiting)
        self._spawn(self._retire(old_topic, old), "modelbus-reply-retire")
        if self._announce is not None:
            await self._announce(topic)

    async def _retire(self, topic: str, listener: ResultsListener) -> None:
        await listener.answered()
        await listener.stop()
        self._retiring.pop(topic, None)
        assert self._delete is not None
        try:
            await self._delete([topic])
        except Exception as exc:  # a topic left behind is logged, never raised
            log.warning("reply_topic_left", topic=topic, error=repr(exc)[:300])
