"""Wait for a condition with a deadline: the only way tests wait (never a bare sleep)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.1,
    message: str = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    Raises ``TimeoutError`` naming ``message`` (and the last exception the predicate
    raised, if any) once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{message} not met within {timeout:.1f}s{detail}")
        time.sleep(interval)


async def async_wait_for(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,  # noqa: ASYNC109 - a deadline spanning many awaits
    interval: float = 0.1,
    message: str = "condition",
) -> T:
    """Like ``wait_for`` without blocking the event loop; ``predicate`` may be async."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{message} not met within {timeout:.1f}s{detail}")
        await asyncio.sleep(interval)
