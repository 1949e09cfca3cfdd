"""Progress notices with fakes: a request for a version still being prepared is told the
step while it waits (if it asked), a warm version costs nothing, and the answer follows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pyarrow as pa

from modelbus_client.tables import from_ipc_stream, to_ipc_stream
from modelbus_delivery.records import Outgoing
from modelbus_worker.answering import Answering
from modelbus_worker.handler import RequestHandler
from modelbus_worker.progress_notices import ProgressNotices

from .test_worker_handler import ENTRY, LIMITS, POLICY, TOPICS, LinearPredictor, _record


@dataclass(frozen=True)
class Step:
    step: str
    since: float


class StartingPool:
    """Readiness of one version whose start goes through ``steps``, one per notice sent."""

    def __init__(self, steps: list[str | None]) -> None:
        self.steps = steps
        self.warm = False
        self.asked: list[str] = []

    def ready(self, name: str, version: str) -> bool:
        self.asked.append("ready")
        return self.warm

    def progress(self, name: str, version: str) -> Step | None:
        self.asked.append("progress")
        step = self.steps[0] if self.steps else None
        return Step(step, 100.0) if step is not None else None


class GatedPredictor(LinearPredictor):
    """Answers once the test opens the gate (the version came up)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def predict(self, name: str, version: str, table: pa.Table,
                      timeout_s: float | None = None) -> pa.Table:
        await self.gate
        return await super().predict(name, version, table, timeout_s)


def _setup(steps: list[str | None], warm: bool = False) -> tuple[
        Answering, GatedPredictor, StartingPool, list[Outgoing]]:
    pool = StartingPool(steps)
    pool.warm = warm
    predictor = GatedPredictor()
    sent: list[Outgoing] = []

    async def publish(out: Outgoing) -> None:
        sent.append(out)
        pool.steps.pop(0)  # the start moves on one step per notice
        if not pool.steps:
            predictor.gate.set_result(None)

    notices = ProgressNotices(pool, publish, interval_s=0.001, first_after_s=0.001,
                              clock=lambda: 112.5)
    handler = Answering(RequestHandler({ENTRY.key: ENTRY}, predictor, LIMITS, notices=notices),
                        POLICY, TOPICS.dlq)
    return handler, predictor, pool, sent


BODY = to_ipc_stream(pa.table({"a": [1.0], "b": [2.0]}))


async def test_a_request_that_asked_is_told_each_step_then_answered() -> None:
    handler, _, _, sent = _setup(["files", "images", "loading"])
    out = await handler(_record(BODY, {"model": b"lin", "correlation_id": b"c1",
                                       "notify_progress": b"true", "traceparent":
                                       b"00-0af7651916cd43dd8448eb211c80319c-"
                                       b"b7ad6b7169203331-01"}, key=b"lin"))
    assert [(n.topic, n.key, n.value) for n in sent] == [(TOPICS.results, b"lin", b"")] * 3
    assert [{k: n.headers[k] for k in ("correlation_id", "status", "model", "model_version",
                                       "step", "elapsed_ms", "notice_interval_ms")}
            for n in sent] == [
        {"correlation_id": "c1", "status": "preparing", "model": "lin", "model_version": "3",
         "step": step, "elapsed_ms": "12500", "notice_interval_ms": "1"}
        for step in ("files", "images", "loading")]
    assert all(n.headers["traceparent"].startswith("00-0af76519") for n in sent)
    assert [o.headers["status"] for o in out] == ["ok"]
    assert from_ipc_stream(out[0].value or b"").column("y").to_pylist() == [4.0]


async def test_a_start_not_begun_yet_is_queued() -> None:
    handler, _, _, sent = _setup([None])
    await handler(_record(BODY, {"model": b"lin", "notify_progress": b"true"}))
    assert [n.headers["step"] for n in sent] == ["queued"]


async def test_no_notice_without_the_header_or_for_a_warm_version() -> None:
    for headers, warm, asked in (({"model": b"lin"}, False, []),
                                 ({"model": b"lin", "notify_progress": b"true"}, True,
                                  ["ready"])):
        handler, predictor, pool, sent = _setup(["files"], warm=warm)
        predictor.gate.set_result(None)
        out = await handler(_record(BODY, headers))
        assert ([o.headers["status"] for o in out], sent, pool.asked) == (["ok"], [], asked)
