"""A blocking facade over the asyncio client, for scripts and notebooks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from modelbus_contract.errors import InferenceTimeout
from modelbus_contract.lanes import Lane
from modelbus_contract.messages import CatalogEntry
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogChange
from modelbus_delivery.closing import CLOSE_TIMEOUT_S
from modelbus_delivery.logs import get_logger

from .async_client import AsyncModelbusClient
from .chunked_predict import DEFAULT_WINDOW, ChunkResult
from .chunking import Chunk
from .prediction import Prediction, input_index, require_pandas, to_dataframe
from .progress import Progress, ProgressListener, wait_after_notice
from .results_listener import ClientClosed
from .trace_context import request_trace_headers

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")
log = get_logger("client")

# Beyond a call's own deadline, how long a caller waits for the loop thread to answer.
GRACE_S = 5.0
# How long closing waits for the loop's remaining tasks to end, and for its thread to stop.
LOOP_STOP_TIMEOUT_S = 2.0


class ModelbusClient:
    """Same calls as ``AsyncModelbusClient``, blocking; runs its own event-loop thread.

    Every public call of the asyncio client has a twin here with the same parameters
    (``start`` excepted: the constructor connects). Iterators (``predict_batches``,
    ``predict_chunks``, ``watch_catalog``) are plain iterators. Listeners (``on_progress``)
    are called on the client's event-loop thread.

    ``close()`` (or leaving the ``with`` block) never raises and returns within
    ``close_bound_s``: the asyncio client is closed within its bound, the loop's remaining
    tasks are cancelled and its thread is stopped. Calls blocked in other threads end with
    ``ClientClosed``.
    """

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        *,
        settings: ModelbusSettings | None = None,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
        reply_topic: str | None = None,
        on_progress: ProgressListener | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._on_progress = on_progress
        # The last progress notice of any call (when, what): chunked calls wait longer.
        self._last_notice: tuple[float, Progress] | None = None
        self._calls: set[concurrent.futures.Future[Any]] = set()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="modelbus-client", daemon=True
        )
        self._thread.start()
        self._client = AsyncModelbusClient(
            bootstrap_servers, settings=settings, close_timeout_s=close_timeout_s,
            reply_topic=reply_topic, on_progress=self._noticed,
        )
        self._close_bound_s = self._client.close_bound_s + GRACE_S + 2 * LOOP_STOP_TIMEOUT_S
        try:
            self._run(self._client.start())
        except BaseException:
            self._closed = True
            self._stop_loop()
            raise

    @property
    def reply_topic(self) -> str:
        """The topic new requests name for their answers (see ``AsyncModelbusClient``)."""
        return self._client.reply_topic

    @property
    def close_bound_s(self) -> float:
        """The longest ``close()`` takes: the asyncio client's bound, a grace, and stopping
        the loop's tasks and thread."""
        return self._close_bound_s

    @property
    def settings(self) -> ModelbusSettings:
        return self._client.settings

    def _noticed(self, progress: Progress) -> None:
        """A progress notice of a call without a listener of its own (on the loop thread)."""
        self._last_notice = (time.monotonic(), progress)
        if self._on_progress is not None:
            self._on_progress(progress)

    def _step_deadline(self, timeout: float) -> Callable[[], float]:
        """When one step of a chunked call stops waiting: twice a chunk's ``timeout`` and a
        grace from now, or later while progress notices come (a version being prepared)."""
        start = time.monotonic()

        def deadline() -> float:
            until = start + 2 * timeout + GRACE_S
            if self._last_notice is not None:
                at, progress = self._last_notice
                until = max(until, at + wait_after_notice(timeout, progress) + GRACE_S)
            return until

        return deadline

    def _run(
        self, awaitable: Awaitable[T], timeout: float | None = None,
        deadline: Callable[[], float] | None = None,
    ) -> T:
        """Run ``awaitable`` on the loop thread; ClientClosed if the client closes meanwhile.

        It waits ``timeout`` seconds, or until ``deadline()`` (a ``time.monotonic`` value
        that may move later while it waits)."""
        with self._lock:
            if self._closed:
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
                raise ClientClosed("the client is closed")

            async def call() -> T:
                return await awaitable

            future = asyncio.run_coroutine_threadsafe(call(), self._loop)
            self._calls.add(future)
        try:
            if deadline is None:
                return future.result(timeout)
            while True:
                try:
                    return future.result(max(deadline() - time.monotonic(), 0.0))
                except TimeoutError:
                    if deadline() <= time.monotonic():
                        raise
        except concurrent.futures.CancelledError:
            raise ClientClosed("the client was closed while the call was running") from None
        except TimeoutError:
            future.cancel()
            raise
        finally:
            with self._lock:
                self._calls.discard(future)

    def predict(
        self, model: str, data: Any, version: str | int | None = None, timeout: float = 60.0,
        correlation_id: str | None = None, wait: float | None = None,
        traceparent: str | None = None, tracestate: str | None = None,
        on_progress: ProgressListener | None = None, lane: Lane = "interactive",
    ) -> pa.Table:
        """See ``AsyncModelbusClient.predict``: ``timeout`` is the model's deadline, ``wait``
        how long this call waits for the answer (default: ``timeout``), extended by each
        progress notice while the model version is prepared. ``on_progress`` is called on
        the client's event-loop thread. ``lane``: ``interactive`` (default) or ``bulk``."""
        return self.predict_answer(
            model, data, version, timeout, correlation_id, wait, traceparent, tracestate,
            on_progress, lane,
        ).table

    def predict_answer(
        self, model: str, data: Any, version: str | int | None = None, timeout: float = 60.0,
        correlation_id: str | None = None, wait: float | None = None,
        traceparent: str | None = None, tracestate: str | None = None,
        on_progress: ProgressListener | None = None, lane: Lane = "interactive",
    ) -> Prediction:
        """``predict`` with who answered: the table, the ``model_version`` that answered,
        the ``correlation_id`` and the result's headers (see the async one)."""
        return self._answer(self._client.predict_answer, model, data, version, timeout,
                            correlation_id, wait, traceparent, tracestate, on_progress, lane)

    def predict_ipc(
        self, model: str, body: bytes, version: str | int | None = None, timeout: float = 60.0,
        correlation_id: str | None = None, wait: float | None = None,
        traceparent: str | None = None, tracestate: str | None = None,
        on_progress: ProgressListener | None = None, lane: Lane = "interactive",
    ) -> Prediction:
        """``predict_answer`` for a body that is already an Arrow IPC stream, sent as it is
        (see the async one)."""
        return self._answer(self._client.predict_ipc, model, body, version, timeout,
                            correlation_id, wait, traceparent, tracestate, on_progress, lane)

    def _answer(
        self, call: Callable[..., Coroutine[Any, Any, Prediction]], model: str, data: Any,
        version: str | int | None, timeout: float, correlation_id: str | None,
        wait: float | None, traceparent: str | None, tracestate: str | None,
        on_progress: ProgressListener | None, lane: Lane,
    ) -> Prediction:
        wait = timeout if wait is None else wait
        # Read here: the current OpenTelemetry span is this thread's, not the loop thread's.
        trace = request_trace_headers(traceparent, tracestate)
        until = [time.monotonic() + wait + GRACE_S]
        listener = on_progress or self._on_progress

        def noticed(progress: Progress) -> None:  # on the loop thread
            until[0] = max(until[0], time.monotonic() + wait_after_notice(wait, progress)
                           + GRACE_S)
            if listener is not None:
                listener(progress)

        try:
            return self._run(
                call(
                    model, data, version=version, timeout=timeout,
                    correlation_id=correlation_id, wait=wait,
                    traceparent=trace.get("traceparent"), tracestate=trace.get("tracestate"),
                    on_progress=noticed, lane=lane,
                ),
                deadline=lambda: until[0],
            )
        except TimeoutError:  # the loop thread did not answer in time
            raise InferenceTimeout(f"no result for {model} within {wait}s") from None

    def predict_df(
        self, model: str, data: Any, version: str | int | None = None, timeout: float = 60.0,
        window: int = DEFAULT_WINDOW, lane: Lane = "bulk",
    ) -> pd.DataFrame:
        """A DataFrame in, a DataFrame out (the input's index kept): ``predict_table``'s
        answer as a pandas DataFrame. Needs pandas (``ImportError`` naming the extra)."""
        require_pandas("predict_df")
        return to_dataframe(self.predict_table(model, data, version, timeout, window, lane),
                            input_index(data))

    def predict_table(
        self, model: str, data: Any, version: str | int | None = None, timeout: float = 60.0,
        window: int = DEFAULT_WINDOW, lane: Lane = "bulk",
    ) -> pa.Table:
        """A table of any size, sent in chunks of at most a record each (see the async one),
        to the bulk lane unless ``lane`` says ``interactive``.

        Every chunk has its own deadline, so the call ends however many chunks there are.
        """
        return self._run(
            self._client.predict_table(model, data, version, timeout, window, lane)
        )

    def predict_batches(
        self, model: str, data: pa.Table | Iterable[pa.RecordBatch],
        version: str | int | None = None, timeout: float = 60.0, window: int = DEFAULT_WINDOW,
        lane: Lane = "bulk",
    ) -> Iterator[pa.Table]:
        """The answers to a table or record batches of any size, one table per chunk, in order.

        Each step waits at most twice one chunk's ``timeout`` (plus a grace) for the loop
        thread, longer while progress notices come.
        """
        answers: AsyncIterator[pa.Table] = self._client.predict_batches(
            model, data, version, timeout, window, lane
        )
        return self._iterate(model, answers, timeout)

    def predict_chunks(
        self,
        model: str,
        chunks: Iterable[Chunk],
        version: str | int | None = None,
        timeout: float = 60.0,
        window: int = DEFAULT_WINDOW,
        chunk_id: str | None = None,
        chunk_count: int | None = None,
        lane: Lane = "bulk",
    ) -> Iterator[ChunkResult]:
        """One ``ChunkResult`` per chunk, in order, at most ``window`` in flight; a failed
        chunk is a result with its ``error`` (see the async one). ``chunks`` is iterated on
        the client's event-loop thread."""
        results = self._client.predict_chunks(
            model, chunks, version, timeout, window, chunk_id, chunk_count, lane
        )
        return self._iterate(model, results, timeout)

    def _iterate(self, model: str, items: AsyncIterator[T], timeout: float) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._run(anext(items), deadline=self._step_deadline(timeout))
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise InferenceTimeout(f"no result for {model} within {timeout}s") from None
        finally:
            if not self._closed and hasattr(items, "aclose"):
                with contextlib.suppress(ClientClosed, TimeoutError):
                    self._run(items.aclose(), self.close_bound_s)

    def catalog(self, timeout: float = 30.0) -> list[CatalogEntry]:
        """Every current catalog entry, sorted by name and version."""
        return self._run(self._client.catalog(timeout), timeout + self.close_bound_s)

    def wait_prepared(
        self, model: str, version: str | int | None = None, timeout: float = 900.0
    ) -> CatalogEntry:
        """See ``AsyncModelbusClient.wait_prepared``."""
        return self._run(self._client.wait_prepared(model, version, timeout),
                         timeout + self.close_bound_s)

    def watch_catalog(self) -> Iterator[CatalogChange]:
        """The current entries, then every change; ends (or raises ClientClosed) on close."""
        changes: AsyncGenerator[CatalogChange, None] = self._client.watch_catalog()
        try:
            while True:
                yield self._run(changes.__anext__())
        except StopAsyncIteration:
            return
        finally:
            if not self._closed:  # else closing ended it
                with contextlib.suppress(ClientClosed, TimeoutError):
                    self._run(changes.aclose(), self.close_bound_s)

    def close(self) -> None:
        """Close the client within ``close_bound_s`` and stop the loop thread; never raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            future = asyncio.run_coroutine_threadsafe(self._client.close(), self._loop)
            try:
                future.result(self._client.close_bound_s + GRACE_S)
            except TimeoutError:
                future.cancel()
                log.warning("close_abandoned", what="modelbus client",
                            after_s=self._client.close_bound_s + GRACE_S)
            except (Exception, concurrent.futures.CancelledError) as exc:
                log.warning("close_failed", what="modelbus client", error=repr(exc)[:300])
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        """Cancel what still runs on the loop, stop its thread and close it (bounded)."""
        with self._lock:
            calls = list(self._calls)
        for call in calls:  # callers blocked in other threads get ClientClosed
            call.cancel()
        if self._thread.is_alive():
            drained = asyncio.run_coroutine_threadsafe(_cancel_all_tasks(), self._loop)
            try:
                drained.result(LOOP_STOP_TIMEOUT_S)
            except (TimeoutError, concurrent.futures.CancelledError):
                drained.cancel()
                log.warning("close_abandoned", what="modelbus client tasks",
                            after_s=LOOP_STOP_TIMEOUT_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(LOOP_STOP_TIMEOUT_S)
        if self._thread.is_alive():  # something blocks the loop: leave the daemon thread
            log.warning("close_abandoned", what="modelbus client loop thread",
                        after_s=LOOP_STOP_TIMEOUT_S)
            return
        try:
            self._loop.run_until_complete(
                asyncio.wait_for(self._loop.shutdown_asyncgens(), LOOP_STOP_TIMEOUT_S)
            )
        except (Exception, asyncio.CancelledError) as exc:
            log.warning("close_failed", what="modelbus client loop", error=repr(exc)[:300])
        finally:
            self._loop.close()

    def __enter__(self) -> ModelbusClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def _cancel_all_tasks() -> None:
    """Cancel every other task of the running loop; wait for them, bounded."""
    me = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not me]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=LOOP_STOP_TIMEOUT_S / 2)
