"""Background preparation with fakes: what the policy wants, who owns it, each version
prepared once under the concurrency cap, a failure reported once and not retried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.support.waiting import async_wait_for

from modelbus_contract.errors import ModelUnavailable
from modelbus_contract.messages import CatalogEntry, ServingReport
from modelbus_delivery.partitioner import keyed_partition
from modelbus_worker.preparation.plan import Ownership, wanted_versions
from modelbus_worker.preparation.preparer import Preparer
from modelbus_worker.preparation.reports import ServingReporter

EVERYTHING = Ownership(frozenset(range(12)), 12)


def _entry(name: str, version: str, *, aliases: list[str] | None = None,
           status: str = "ready", shards: int = 1) -> CatalogEntry:
    return CatalogEntry(name=name, version=version, status=status,  # type: ignore[arg-type]
                        aliases=aliases or [], shards=shards)


def _keys(entries: list[CatalogEntry]) -> list[str]:
    return [e.key for e in entries]


def test_latest_is_the_newest_ready_version_of_each_model_and_every_aliased_one() -> None:
    entries = [_entry("a", "1", aliases=["prod"]), _entry("a", "2"), _entry("a", "10"),
               _entry("b", "3", status="invalid"), _entry("b", "2"), _entry("c", "1")]
    assert _keys(wanted_versions(entries, "latest", EVERYTHING, 100)) == [
        "a/10", "b/2", "c/1", "a/1"]
    assert _keys(wanted_versions(entries, "all", EVERYTHING, 100)) == [
        "a/10", "b/2", "c/1", "a/2", "a/1"]
    assert wanted_versions(entries, "none", EVERYTHING, 100) == []


def test_the_cap_keeps_the_newest_of_as_many_models_as_it_allows() -> None:
    entries = [_entry(m, v) for m in "abc" for v in ("1", "2")]
    assert _keys(wanted_versions(entries, "all", EVERYTHING, 4)) == ["a/2", "b/2", "c/2", "a/1"]
    assert wanted_versions(entries, "all", EVERYTHING, 0) == []


def _partition(key: str, count: int = 12) -> int:
    return keyed_partition(key.encode(), list(range(count)), list(range(count)))


def test_a_worker_owns_the_models_whose_request_keys_land_on_its_partitions() -> None:
    mine = Ownership(frozenset({_partition("a")}), 12)
    others = [n for n in ("b", "c", "d", "e", "f") if _partition(n) != _partition("a")]
    assert mine.owns(_entry("a", "1"))
    assert not mine.owns(_entry(others[0], "1"))
    # A model whose second shard key lands here is owned once it has two shards.
    sharded_model = next(f"s{i}" for i in range(1000)
                         if _partition(f"s{i}") != _partition("a")
                         and _partition(f"s{i}#1") == _partition("a"))
    assert not mine.owns(_entry(sharded_model, "1"))
    assert mine.owns(_entry(sharded_model, "1", shards=2))


class RecordingWriter:
    """The worker's Kafka writer: keeps every serving report it is given."""

    def __init__(self) -> None:
        self.reports: list[ServingReport] = []

    async def send(self, topic: str, key: Any, value: bytes | None, headers: Any = None) -> None:
        assert value is not None
        self.reports.append(ServingReport.model_validate_json(value))


class FakePool:
    """The pool's ``prepare``: each call waits until the test lets it end (or fail)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gates: dict[str, asyncio.Future[None]] = {}
        self.running = 0
        self.most_at_once = 0
        self.warm: set[str] = set()  # versions a request has made warm already

    def ready(self, name: str, version: str) -> bool:
        return f"{name}/{version}" in self.warm

    async def prepare(self, name: str, version: str) -> None:
        key = f"{name}/{version}"
        self.calls.append(key)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.gates.setdefault(key, asyncio.get_running_loop().create_future())
        finally:
            self.running -= 1

    def finish(self, key: str, error: Exception | None = None) -> None:
        gate = self.gates.setdefault(key, asyncio.get_running_loop().create_future())
        if error is None:
            gate.set_result(None)
        else:
            gate.set_exception(error)


class Ticks:
    """A clock that moves 2.5 s each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 2.5
        return self.now


def _preparer(entries: dict[str, CatalogEntry], pool: FakePool, writer: RecordingWriter,
              ownership: list[Ownership | None], policy: str = "latest",
              concurrency: int = 1) -> tuple[Preparer, list[tuple[str, float]]]:
    observed: list[tuple[str, float]] = []
    reporter = ServingReporter(writer, "discovered", entries, "w1")  # type: ignore[arg-type]
    preparer = Preparer(entries, lambda: ownership[0], pool, reporter, policy=policy,
                        concurrency=concurrency, max_versions=16,
                        observe=lambda state, s: observed.append((state, s)), clock=Ticks())
    return preparer, observed


async def _until(condition: Any) -> None:
    await async_wait_for(condition, 10, interval=0, message="the preparer's next step")


async def test_each_wanted_version_is_prepared_once_and_reported() -> None:
    entries = {"m/1": _entry("m", "1"), "m/2": _entry("m", "2")}
    pool, writer = FakePool(), RecordingWriter()
    preparer, observed = _preparer(entries, pool, writer, [EVERYTHING])
    await preparer.start()
    try:
        await _until(lambda: pool.calls == ["m/2"])
        pool.finish("m/2")
        await preparer.idle()
        preparer.wake()  # anything changing again prepares nothing twice
        await _until(lambda: not preparer._wake.is_set())
        await preparer.idle()
    finally:
        await preparer.stop()
    assert pool.calls == ["m/2"]
    assert [(r.version, r.state, r.worker, r.seconds) for r in writer.reports] == [
        ("2", "preparing", "w1", None), ("2", "prepared", "w1", 2.5)]
    assert observed == [("prepared", 2.5)]


async def test_a_version_a_request_made_warm_first_is_reported_prepared_never_preparing(
) -> None:
    entries = {"m/1": _entry("m", "1")}
    pool, writer = FakePool(), RecordingWriter()
    pool.warm.add("m/1")
    pool.finish("m/1")  # the pool has nothing to do for a warm version
    preparer, observed = _preparer(entries, pool, writer, [EVERYTHING])
    await preparer.start()
    try:
        await _until(lambda: pool.calls == ["m/1"])
        await preparer.idle()
    finally:
        await preparer.stop()
    assert [(r.version, r.state, r.worker) for r in writer.reports] == [("1", "prepared", "w1")]
    assert observed == [("prepared", 2.5)]


async def test_a_failed_preparation_is_reported_once_and_not_tried_again() -> None:
    entries = {"m/1": _entry("m", "1")}
    pool, writer = FakePool(), RecordingWriter()
    preparer, observed = _preparer(entries, pool, writer, [EVERYTHING])
    await preparer.start()
    try:
        await _until(lambda: pool.calls == ["m/1"])
        pool.finish("m/1", ModelUnavailable("no-such-package==9: no matching distribution\n"
                                            "pip said more"))
        await preparer.idle()
        for _ in range(3):
            preparer.wake()
            await _until(lambda: not preparer._wake.is_set())  # it planned again
            await preparer.idle()
    finally:
        await preparer.stop()
    assert pool.calls == ["m/1"]
    failed = writer.reports[-1]
    assert [r.state for r in writer.reports] == ["preparing", "failed"]
    assert (failed.error_code, failed.error_message) == (
        "model_unavailable", "no-such-package==9: no matching distribution")
    assert observed == [("failed", 2.5)]


async def test_preparations_run_at_most_concurrency_at_once() -> None:
    entries = {f"m{i}/1": _entry(f"m{i}", "1") for i in range(4)}
    pool, writer = FakePool(), RecordingWriter()
    preparer, _ = _preparer(entries, pool, writer, [EVERYTHING], concurrency=2)
    await preparer.start()
    try:
        await _until(lambda: len(pool.calls) == 2)
        for key in list(pool.calls):
            pool.finish(key)
        await _until(lambda: len(pool.calls) == 4)
        for key in pool.calls[2:]:
            pool.finish(key)
        await preparer.idle()
    finally:
        await preparer.stop()
    assert (sorted(pool.calls), pool.most_at_once) == (sorted(entries), 2)


async def test_policy_none_prepares_nothing() -> None:
    entries = {"m/1": _entry("m", "1")}
    pool, writer = FakePool(), RecordingWriter()
    preparer, _ = _preparer(entries, pool, writer, [EVERYTHING], policy="none")
    await preparer.start()
    await _until(lambda: not preparer._wake.is_set())
    await preparer.stop()
    assert (pool.calls, writer.reports) == ([], [])


async def test_a_new_owner_prepares_what_it_now_owns_and_nothing_before_it_owns_any() -> None:
    entries = {"a/1": _entry("a", "1"), "b/1": _entry("b", "1")}
    pool, writer = FakePool(), RecordingWriter()
    ownership: list[Ownership | None] = [None]  # not assigned yet
    preparer, _ = _preparer(entries, pool, writer, ownership)
    await preparer.start()
    try:
        await _until(lambda: not preparer._wake.is_set())
        assert pool.calls == []
        ownership[0] = Ownership(frozenset({_partition("a")}), 12)
        preparer.wake()  # a rebalance
        await _until(lambda: pool.calls == ["a/1"])
        pool.finish("a/1")
        ownership[0] = EVERYTHING
        preparer.wake()
        await _until(lambda: pool.calls == ["a/1", "b/1"])
        pool.finish("b/1")
        await preparer.idle()
    finally:
        await preparer.stop()
    assert _partition("a") != _partition("b")


async def test_a_version_no_longer_owned_while_queued_is_not_prepared() -> None:
    entries = {"a/1": _entry("a", "1"), "b/1": _entry("b", "1")}
    pool, writer = FakePool(), RecordingWriter()
    ownership: list[Ownership | None] = [EVERYTHING]
    preparer, _ = _preparer(entries, pool, writer, ownership)
    await preparer.start()
    try:
        await _until(lambda: len(pool.calls) == 1)
        first = pool.calls[0]
        other = "b" if first == "a/1" else "a"
        ownership[0] = Ownership(frozenset({_partition(first.split("/")[0])}), 12)
        preparer.wake()  # the other model's partition went to another worker
        await _until(lambda: not preparer._wake.is_set())
        pool.finish(first)
        await preparer.idle()
    finally:
        await preparer.stop()
    assert pool.calls == [first]
    assert f"{other}/1" not in preparer.outcomes


@pytest.mark.parametrize("state", ["preparing", "prepared"])
async def test_a_report_the_entry_shows_already_is_not_sent_again(state: str) -> None:
    report = ServingReport(name="m", version="1", state=state, worker="w1")
    entry = _entry("m", "1").model_copy(update={"serving": report.state_only()})
    writer = RecordingWriter()
    reporter = ServingReporter(writer, "t", {"m/1": entry}, "w1")  # type: ignore[arg-type]
    assert await reporter.send(report)
    assert await reporter.send(report.model_copy(update={"worker": "w2"}))
    assert [r.worker for r in writer.reports] == ["w2"]
