"""Running one service in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from modelbus_delivery.logs import get_logger

log = get_logger("runner")


def run_service(name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run ``main`` until it returns or a stop signal arrives; exit code 0 on a clean stop."""

    async def guarded() -> None:
        task = asyncio.create_task(main(), name=name)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("service_stopping", service=name)

    asyncio.run(guarded())
    return 0
