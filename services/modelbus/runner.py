"""Running one service in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from modelbus.heap import settle_heap
from modelbus_delivery.logs import get_logger

log = get_logger("runner")


def run_service(name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run ``main`` until it returns or a stop signal arrives; exit code 0 on a clean stop.

    The first SIGINT or SIGTERM cancels ``main``, which then stops in its own time; later
    ones are logged and ignored.
    """

    async def guarded() -> None:
        task = asyncio.create_task(main(), name=name)
        loop = asyncio.get_running_loop()
        stopping = False

        def stop(sig: signal.Signals) -> None:
            # Once: a second signal (a supervisor's SIGTERM to the process group after
            # its own, a second Ctrl-C) would cancel the stop itself half way, leaving
            # containers and uncommitted offsets behind. SIGKILL is what cuts it short.
            nonlocal stopping
            if stopping:
                log.info("service_stop_in_progress", service=name, signal=sig.name)
                return
            stopping = True
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        try:
            await task
        except asyncio.CancelledError:
            log.info("service_stopping", service=name)

    settle_heap()
    asyncio.run(guarded())
    return 0
