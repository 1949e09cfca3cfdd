"""Progress notices: a request whose model version is still being prepared is told so.

A request with ``notify_progress: true`` for a version without a warm container gets,
while its answer is on its way, a notice on its reply topic every ``interval_s`` (the
first after ``first_after_s``, so a quick start sends none): ``status: preparing``, the
step of the start (``files``, ``images``, ``container``, ``loading``; ``queued`` before
it began) and the seconds so far. The caller extends its wait by each one; the request's
own deadline starts once the version is up. A warm version costs one dictionary lookup.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from modelbus_contract.inference import PROGRESS_STATUS
from modelbus_delivery.logs import get_logger
from modelbus_delivery.records import Outgoing
from modelbus_delivery.writer import PublishFailed

from .ports import Readiness
from .request import Envelope

log = get_logger("worker.progress")

T = TypeVar("T")
NOTICE_INTERVAL_S = 5.0
FIRST_NOTICE_AFTER_S = 0.5
QUEUED = "queued"


Publish = Callable[[Outgoing], Awaitable[None]]


def progress_notice(
    envelope: Envelope, model: str, version: str, step: str, elapsed_s: float,
    interval_s: float,
) -> Outgoing:
    """The notice record: the request's key and reply topic, no value."""
    return Outgoing(
        envelope.reply_to,
        envelope.key,
        b"",
        {
            "correlation_id": envelope.correlation_id,
            "status": PROGRESS_STATUS,
            "model": model,
            "model_version": version,
            "step": step,
            "elapsed_ms": str(int(max(elapsed_s, 0.0) * 1000)),
            "notice_interval_ms": str(int(interval_s * 1000)),
            **dict(envelope.echoed),
        },
    )


class ProgressNotices:
    """Sends notices for a request while its version is prepared (see the module doc)."""

    def __init__(
        self, readiness: Readiness, publish: Publish, *,
        interval_s: float = NOTICE_INTERVAL_S, first_after_s: float = FIRST_NOTICE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._readiness = readiness
        self._publish = publish
        self._interval_s = interval_s
        self._first_after_s = first_after_s
        self._clock = clock

    async def around(self, envelope: Envelope, model: str, version: str,
                     work: Awaitable[T]) -> T:
        """``await work``, sending notices while it waits for the version to be up."""
        if self._readiness.ready(model, version):
            return await work
        task = asyncio.ensure_future(work)
        arrived = self._clock()
        delay = self._first_after_s
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=delay)
                if done:
                    return task.result()
                delay = self._interval_s
                progress = self._readiness.progress(model, version)
                if progress is None and self._readiness.ready(model, version):
                    continue  # up: the predict itself is running
                step, since = (progress.step, progress.since) if progress else (QUEUED, arrived)
                await self._send(progress_notice(
                    envelope, model, version, step, self._clock() - since, self._interval_s
                ))
        finally:
            if not task.done():
                task.cancel()

    async def _send(self, notice: Outgoing) -> None:
        try:
            await self._publish(notice)
        except (PublishFailed, RuntimeError) as exc:  # the result still follows
            log.warning("progress_notice_failed", correlation_id=notice.headers.get(
                "correlation_id"), error=str(exc)[:300])
