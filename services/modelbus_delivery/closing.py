"""Closing Kafka clients within a bound, whatever the broker is doing.

aiokafka's ``stop()`` can hang on a broker that stopped answering and can let a
``CancelledError`` out of a fetch it cancels itself; neither may escape a close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from .logs import get_logger

log = get_logger("closing")

CLOSE_TIMEOUT_S = 5.0


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` and wait until each has ended; what they raise is dropped (their
    own failures were theirs to report)."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def close_quietly(
    what: str, close: Callable[[], Awaitable[Any]], timeout_s: float = CLOSE_TIMEOUT_S
) -> bool:
    """Await ``close()`` for at most ``timeout_s``; True when it finished cleanly.

    Errors, timeouts and cancellations raised from inside the close are logged and
    swallowed; only a cancellation of the caller itself propagates.
    """
    me = asyncio.current_task()
    try:
        async with asyncio.timeout(timeout_s):
            await close()
        return True
    except asyncio.CancelledError:
        if me is not None and me.cancelling():
            raise
        log.warning("close_interrupted", what=what)
    except TimeoutError:
        log.warning("close_abandoned", what=what, after_s=timeout_s)
    except Exception as exc:
        log.warning("close_failed", what=what, error=f"{type(exc).__name__}: {exc}"[:300])
    return False
