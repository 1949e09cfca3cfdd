"""A client's private reply topic is replaced after N requests or N reads of answers; the old
one is read until
its last request is settled, then deleted (fake readers: the real ones are in
tests/e2e/test_reply_topics.py)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from tests.support.waiting import async_wait_for

from modelbus_client.reply_topics import ReplyTopics, RotationCount
from modelbus_client.results_listener import ResultsListener


class FakeListener:
    def __init__(self, topic: str, fail_start: bool = False) -> None:
        self.topic = topic
        self.fail_start = fail_start
        self.waiting_ids: dict[str, asyncio.Future[Any]] = {}
        self.started = self.stopped = False
        self.rechecks = 0
        self.reads = 0
        self._settled = asyncio.Event()

    @property
    def waiting(self) -> int:
        return len(self.waiting_ids)

    async def start(self) -> None:
        if self.fail_start:
            raise OSError("broker unreachable")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def expect(self, cid: str, on_notice: Any = None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting_ids[cid] = future
        return future

    def forget(self, cid: str) -> None:
        if self.waiting_ids.pop(cid, None) is not None:
            self._settled.set()

    def close_waiting(self) -> None:
        self.waiting_ids.clear()
        self._settled.set()

    async def answered(self) -> None:
        while self.waiting_ids:
            self.rechecks += 1  # found requests still waiting: waits for the next to settle
            self._settled.clear()
            await self._settled.wait()


class Fixture:
    def __init__(
        self, rotate_after: int, failing: set[str] | None = None, rotate_after_reads: int = 0
    ) -> None:
        self.made: list[FakeListener] = []
        self.deleted: list[str] = []
        self.names = iter(f"replies.{n}" for n in range(1, 100))
        self.failing = failing or set()
        self.announced: list[str] = []
        self.topics = ReplyTopics(
            "replies.0", self.listen, rotate_after=rotate_after,
            rotate_after_reads=rotate_after_reads,
            next_topic=lambda: next(self.names), delete=self.delete, announce=self.announce,
        )

    def listen(self, topic: str) -> ResultsListener:
        listener = FakeListener(topic, fail_start=topic in self.failing)
        self.made.append(listener)
        return cast(ResultsListener, listener)

    async def delete(self, topics: list[str]) -> None:
        self.deleted.extend(topics)

    async def announce(self, topic: str) -> None:
        self.announced.append(topic)


def test_the_count_asks_for_one_rotation_at_a_time() -> None:
    count = RotationCount(3)
    assert [count.sent_one() for _ in range(5)] == [False, False, True, False, False]
    count.rotated()
    assert [count.sent_one() for _ in range(3)] == [False, False, True]
    assert [RotationCount(0).sent_one() for _ in range(5)] == [False] * 5


def test_the_count_asks_for_a_rotation_once_the_current_reader_read_enough_times() -> None:
    count = RotationCount(0, rotate_after_reads=3)
    assert [count.sent_one(reads) for reads in (0, 2, 3, 4)] == [False, False, True, False]
    count.rotated()
    assert [count.sent_one(reads) for reads in (0, 1, 3)] == [False, False, True]
    both = RotationCount(5, rotate_after_reads=3)
    assert [both.sent_one(1) for _ in range(5)] == [False, False, False, False, True]


def test_a_rotation_by_reads_given_up_is_due_again_after_as_many_reads_more() -> None:
    count = RotationCount(0, rotate_after_reads=3)
    assert count.sent_one(3)
    count.gave_up()
    assert [count.sent_one(reads) for reads in (3, 4, 5, 6)] == [False, False, False, True]
    count.rotated()
    assert [count.sent_one(reads) for reads in (0, 2, 3)] == [False, False, True]


@pytest.mark.parametrize(("after", "reads"), [(1, 0), (0, 1)])
def test_rotating_needs_a_way_to_name_and_delete_topics(after: int, reads: int) -> None:
    with pytest.raises(ValueError, match="next_topic and delete"):
        ReplyTopics("replies.0", lambda topic: cast(ResultsListener, None),
                    rotate_after=after, rotate_after_reads=reads)


async def test_a_topic_read_often_enough_is_replaced_at_the_next_request() -> None:
    f = Fixture(rotate_after=0, rotate_after_reads=2)
    await f.topics.start()
    f.made[0].reads = 1
    assert f.topics.expect("a")[0] == "replies.0"
    await f.topics.rotated()
    assert f.topics.rotations == 0
    f.made[0].reads = 2
    assert f.topics.expect("b")[0] == "replies.0"  # this one still names the current topic
    await f.topics.rotated()
    assert (f.topics.topic, f.topics.rotations) == ("replies.1", 1)
    assert f.topics.expect("c")[0] == "replies.1"  # the fresh reader has read nothing yet
    await f.topics.rotated()
    assert f.topics.rotations == 1


async def test_requests_name_the_new_topic_and_the_old_is_deleted_once_settled() -> None:
    f = Fixture(rotate_after=2)
    await f.topics.start()
    assert [f.topics.expect(cid)[0] for cid in ("a", "b")] == ["replies.0", "replies.0"]
    await f.topics.rotated()
    assert f.topics.expect("c")[0] == "replies.1"
    assert f.topics.topics == ["replies.1", "replies.0"]
    old, new = f.made
    assert (old.waiting, new.waiting, f.topics.rotations) == (2, 1, 1)
    assert f.announced == ["replies.1"]  # the new topic's first sign of life

    looked = old.rechecks
    f.topics.forget("a")
    await async_wait_for(lambda: old.rechecks > looked or old.stopped, 10, interval=0,
                         message="the retirement looked at replies.0 again")
    assert (f.deleted, old.stopped) == ([], False)  # "b" still waits on replies.0
    f.topics.forget("b")
    await f.topics.settled()
    assert (f.deleted, old.stopped, new.stopped) == (["replies.0"], True, False)
    assert f.topics.topics == ["replies.1"]


async def test_a_replacement_that_cannot_start_keeps_the_current_topic_and_is_tried_again(
) -> None:
    f = Fixture(rotate_after=2, failing={"replies.1"})
    await f.topics.start()
    for cid in ("a", "b"):
        f.topics.expect(cid)
    await f.topics.rotated()
    assert (f.topics.topic, f.topics.rotations, f.made[1].stopped) == ("replies.0", 0, True)
    assert [f.topics.expect(cid)[0] for cid in ("c", "d")] == ["replies.0", "replies.0"]
    await f.topics.rotated()
    assert (f.topics.topic, f.topics.rotations) == ("replies.2", 1)


async def test_a_replacement_by_reads_that_cannot_start_is_not_tried_at_every_request(
) -> None:
    f = Fixture(rotate_after=0, rotate_after_reads=2, failing={"replies.1"})
    await f.topics.start()
    f.made[0].reads = 2
    f.topics.expect("a")
    await f.topics.rotated()
    assert (f.topics.topic, f.topics.rotations, len(f.made)) == ("replies.0", 0, 2)
    f.made[0].reads = 3
    f.topics.expect("b")  # one read since the failure: not yet
    await f.topics.rotated()
    assert len(f.made) == 2
    f.made[0].reads = 4
    assert f.topics.expect("c")[0] == "replies.0"
    await f.topics.rotated()
    assert (f.topics.topic, f.topics.rotations, len(f.made)) == ("replies.2", 1, 3)


async def test_stop_ends_every_reader_and_leaves_deleting_to_the_caller() -> None:
    f = Fixture(rotate_after=1)
    await f.topics.start()
    f.topics.expect("a")
    await f.topics.rotated()
    assert f.topics.topics == ["replies.1", "replies.0"]  # "a" still waits on replies.0
    await f.topics.stop()
    assert [(m.topic, m.stopped, m.waiting) for m in f.made] == [
        ("replies.0", True, 0), ("replies.1", True, 0),
    ]
    assert f.deleted == []


async def test_a_shared_topic_is_never_replaced() -> None:
    topics = ReplyTopics("results", lambda topic: cast(ResultsListener, FakeListener(topic)))
    await topics.start()
    assert {topics.expect(str(n))[0] for n in range(100)} == {"results"}
    assert topics.rotations == 0
