"""The asyncio client: ``predict`` (and its table, chunk and DataFrame forms), ``catalog``,
``wait_prepared`` and ``watch_catalog`` over plain aiokafka."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from aiokafka.errors import KafkaError

from modelbus_contract.arrow_bounds import ArrowStreamInvalid, ArrowStreamTooLarge, decode_table
from modelbus_contract.arrow_codec import ARROW_STREAM
from modelbus_contract.channels import private_reply_topic
from modelbus_contract.errors import (
    BadRequest,
    InferenceTimeout,
    InternalError,
    TooLarge,
    error_from_code,
)
from modelbus_contract.lanes import Lane, lane_topic
from modelbus_contract.messages import CatalogEntry, version_order
from modelbus_contract.settings import ModelbusSettings
from modelbus_contract.topic_plan import reply_topic_spec, topic_spec
from modelbus_delivery.catalog_view import CatalogChange, CatalogView
from modelbus_delivery.closing import CLOSE_TIMEOUT_S
from modelbus_delivery.fetch_pacing import FetchPacing
from modelbus_delivery.kafka_config import connection_options
from modelbus_delivery.logs import get_logger
from modelbus_delivery.poison import CONNECTIONS_CLOSE_TIMEOUT_S
from modelbus_delivery.topic_admin import delete_topics
from modelbus_delivery.topics import provide_topics
from modelbus_delivery.writer import PublishFailed, TopicWriter

from .chunked_predict import (
    DEFAULT_WINDOW,
    ChunkPlan,
    ChunkResult,
    new_chunk_id,
    predict_chunks,
)
from .chunking import Chunk, chunk_count, record_batches, sized_chunks
from .prediction import Prediction, input_index, require_pandas, to_dataframe
from .progress import NOTIFY_PROGRESS_HEADER, Progress, ProgressListener, wait_after_notice
from .readiness import prepared_entry
from .reply_heartbeat import ReplyHeartbeat
from .reply_topics import ReplyTopicRequired, ReplyTopics
from .results_listener import TASK_STOP_TIMEOUT_S, Answer, ClientClosed, ResultsListener
from .shards import ShardKeys
from .tables import as_table, to_ipc_stream
from .trace_context import current_trace_headers, request_trace_headers

if TYPE_CHECKING:
    import pandas as pd

log = get_logger("client")

SHARD_VIEW_FETCH_WAIT_MS = 500


class AsyncModelbusClient:
    """Sends prediction requests and awaits their results, matched by correlation id.

    ``AsyncModelbusClient(bootstrap_servers="host:9092")`` uses the default topics; pass
    ``settings`` (or set ``MODELBUS_*`` variables) for another prefix, TLS or SASL.

    Answers come back on a topic of this client's own (PREFIX ``replies.<random id>``,
    made by ``start()`` and deleted by ``close()``), so a client reads only its answers; it
    writes a sign of life there (``reply_heartbeat``). ``reply_topic`` (or
    ``MODELBUS_CLIENT_REPLY_TOPIC``) names a shared one instead, which the client neither
    makes (when ``MODELBUS_KAFKA_CREATE_TOPICS=false``) nor deletes: a team's
    ``replies.NAME`` topic of the workers' allow-list, every client of the team taking its
    own answers from it by correlation id, or the results topic, where batch pipelines read
    every answer.

    ``on_progress`` is told of every progress notice (a model version still being
    prepared) of every call that does not pass its own listener.

    ``close()`` never raises and returns within ``close_bound_s`` seconds, whatever the
    broker does: every Kafka client is closed concurrently, each within ``close_timeout_s``
    (what does not finish is abandoned and logged). Requests still waiting fail with
    ``ClientClosed``; running ``watch_catalog()`` iterations end.
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
        settings = settings or ModelbusSettings()
        self._on_progress = on_progress
        if bootstrap_servers:
            settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap_servers})
        self.settings = settings
        self._kafka = connection_options(settings)
        self._topics = settings.topics
        self._close_timeout_s = close_timeout_s
        self._writer = TopicWriter(self._kafka, max_request_size=settings.max_message_bytes)
        shared = reply_topic or settings.client_reply_topic
        self._shared_replies = shared
        self._private_replies = shared is None
        # The answers' partition follows the request key; a private topic needs one only.
        partitions = 1 if self._private_replies else settings.topic_partitions
        self._heartbeat = ReplyHeartbeat(
            self._writer, lambda: self._replies.topics, settings.client_reply_heartbeat_s
        )
        self._replies = ReplyTopics(
            shared or private_reply_topic(settings),
            lambda topic: ResultsListener(
                self._kafka, topic, close_timeout_s=close_timeout_s, partitions=partitions,
                pacing=FetchPacing.answers(settings),
                spec=reply_topic_spec(settings, topic, partitions),
                create_topic=settings.kafka_create_topics,
            ),
            rotate_after=settings.client_reply_rotate_after if self._private_replies else 0,
            rotate_after_reads=(settings.client_reply_rotate_after_reads
                                if self._private_replies else 0),
            next_topic=lambda: private_reply_topic(settings),
            delete=self._delete_topics,
            announce=self._heartbeat.announce if self._private_replies else None,
        )
        self._views: set[CatalogView] = set()
        self._closed = False
        # The catalog, read in the background, says how many shards a model is spread over.
        self._shard_reading: asyncio.Task[None] | None = None
        self._keys = ShardKeys({})

    @property
    def close_bound_s(self) -> float:
        """The longest ``close()`` takes: its consumers' bound (the writer's 5 s is shorter).

        A consumer: its reading task (``TASK_STOP_TIMEOUT_S``), then its ``stop()``
        (``close_timeout_s``), then the connections an interrupted stop left open
        (``CONNECTIONS_CLOSE_TIMEOUT_S``); all of them are closed concurrently.
        """
        consumers = TASK_STOP_TIMEOUT_S + self._close_timeout_s + CONNECTIONS_CLOSE_TIMEOUT_S
        # Then this client's own reply topic is deleted, within the same timeout.
        deleting = self._close_timeout_s if self._private_replies else 0.0
        return max(consumers, CLOSE_TIMEOUT_S) + deleting

    async def start(self) -> None:
        """Connect: the requests topic and a shared reply topic are made if missing (a
        broker that creates topics on first use would give them its default partition
        count, not the one workers expect), or, with ``MODELBUS_KAFKA_CREATE_TOPICS=false``,
        required (``TopicsMissing``); then the reply topic is read."""
        create = self.settings.kafka_create_topics
        if not create and self._private_replies:
            raise ReplyTopicRequired(
                "MODELBUS_KAFKA_CREATE_TOPICS=false: a client cannot make a reply topic of "
                "its own; set MODELBUS_CLIENT_REPLY_TOPIC to a provisioned one (a team's "
                f"{self.settings.topic_prefix}replies.NAME, made by `modelbus topics apply "
                f"--reply-topic {self.settings.topic_prefix}replies.NAME`) or to the results "
                "topic"
            )
        needed = [topic_spec(self.settings, "requests"),
                  topic_spec(self.settings, "requests_bulk")]
        if self._shared_replies is not None:
            needed.append(reply_topic_spec(self.settings, self._shared_replies,
                                           self.settings.topic_partitions))
        await provide_topics(self._kafka, needed, create=create,
                             reply_topics=tuple(filter(None, [self._shared_replies])))
        await self._replies.start()
        try:
            await self._writer.start()
        except BaseException:
            await self._replies.stop()
            raise
        if self._private_replies:
            self._heartbeat.start()
        # Shard counts change rarely: a long fetch wait keeps this reader nearly idle.
        view = self._view(fetch_max_wait_ms=SHARD_VIEW_FETCH_WAIT_MS)
        self._keys = ShardKeys(view.entries)
        self._shard_reading = asyncio.create_task(self._read_shards(view))

    async def _read_shards(self, view: CatalogView) -> None:
        try:
            await view.start()
        except Exception as exc:  # keys stay model names: every model on one shard
            log.warning("catalog_unreadable", why="request keys", error=repr(exc)[:300])

    async def close(self) -> None:
        """Close every Kafka client of this client within ``close_bound_s``; never raises.

        Only a cancellation of the caller itself propagates.
        """
        self._closed = True
        self._replies.close_waiting()  # waiting requests end now, not after the closing
        if self._shard_reading is not None and not self._shard_reading.done():
            self._shard_reading.cancel()
        reply_topics = self._replies.topics  # before stopping: retiring ones leave the list
        await self._heartbeat.stop()
        outcomes = await asyncio.gather(
            self._writer.stop(),
            self._replies.stop(),
            *(view.stop() for view in list(self._views)),
            return_exceptions=True,
        )
        if self._private_replies:
            await self._delete_reply_topics(reply_topics)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):  # not expected: every stop is quiet
                log.warning("close_failed", what="modelbus client", error=repr(outcome)[:300])

    async def _delete_reply_topics(self, topics: list[str]) -> None:
        """Delete this client's own reply topics (within the close timeout; a topic left
        behind by a broker that did not answer is logged, never raised)."""
        try:
            async with asyncio.timeout(self._close_timeout_s):
                await self._delete_topics(topics)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("reply_topic_left", topics=topics, error=repr(exc)[:300])

    async def _delete_topics(self, topics: list[str]) -> None:
        refused = await delete_topics(self._kafka, topics)
        if refused:  # e.g. no DeleteTopics right: `modelbus topics prune-replies` can
            log.warning("reply_topic_left", topics=sorted(refused), error=str(refused)[:300])

    @property
    def reply_topic(self) -> str:
        """The topic new requests name for their answers (a private one is replaced after
        ``client_reply_rotate_after`` requests)."""
        return self._replies.topic

    async def __aenter__(self) -> AsyncModelbusClient:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def predict(
        self,
        model: str,
        data: Any,
        version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 - the request's deadline, sent to the worker
        correlation_id: str | None = None,
        wait: float | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
        on_progress: ProgressListener | None = None,
        lane: Lane = "interactive",
    ) -> pa.Table:
        """Run ``data`` (Table, DataFrame or dict of columns) through ``model``.

        ``version`` is a number, ``"@alias"`` or None for the newest READY version.
        ``timeout`` is the model's deadline, sent with the request: the worker answers
        ``timeout`` for a request it could not finish by then. ``wait`` is how long this
        call waits for the answer (default: ``timeout``); shorter gives up early while the
        request still runs, longer lets the worker's own ``timeout`` answer arrive.
        ``correlation_id`` names the request (default: a new one); ``predict_answer``
        returns it with the version that answered.
        Raises a ``ModelbusError`` subclass carrying the worker's ``error_code``;
        ``InferenceTimeout`` when no result arrives within ``wait`` seconds (sending
        included), ``ClientClosed`` when the client is closed first, ``InternalError`` when
        the result cannot be read.

        While the model version is still being prepared (files, images, container, model
        load), the worker sends progress notices: each one extends ``wait`` (the deadline
        ``timeout`` starts once the version is up) and is passed to ``on_progress``.

        ``traceparent``/``tracestate`` (W3C Trace Context; ValueError when not valid) go on
        the request; without them, the current OpenTelemetry span's context does, if any.

        ``lane``: ``interactive`` (default: workers take it first) or ``bulk`` (the lane of
        backlogs, which yields to interactive requests); ValueError for another.
        """
        answer = await self.predict_answer(
            model, data, version, timeout, correlation_id, wait, traceparent, tracestate,
            on_progress, lane,
        )
        return answer.table

    async def predict_answer(
        self,
        model: str,
        data: Any,
        version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 - the request's deadline, sent to the worker
        correlation_id: str | None = None,
        wait: float | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
        on_progress: ProgressListener | None = None,
        lane: Lane = "interactive",
    ) -> Prediction:
        """``predict``, answered with who answered: a ``Prediction`` with the ``table``, the
        ``model_version`` the worker resolved (``version`` None or an ``@alias`` becomes a
        number), the ``correlation_id`` and the result's ``headers``. Same arguments and
        errors as ``predict``."""
        return await self.predict_ipc(
            model, to_ipc_stream(as_table(data)), version, timeout, correlation_id, wait,
            traceparent, tracestate, on_progress, lane,
        )

    async def predict_ipc(
        self,
        model: str,
        body: bytes,
        version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 - the request's deadline, sent to the worker
        correlation_id: str | None = None,
        wait: float | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
        on_progress: ProgressListener | None = None,
        lane: Lane = "interactive",
    ) -> Prediction:
        """``predict_answer`` for a body that is already an Arrow IPC stream: sent as it is
        (no copy, no decoding; the worker checks it). Same arguments and errors."""
        trace = request_trace_headers(traceparent, tracestate)
        cid = correlation_id or uuid.uuid4().hex
        headers, table = await self._request(
            model, body, version, timeout, cid, trace=trace, wait=wait, on_progress=on_progress,
            lane=lane,
        )
        return Prediction.of(headers, table, model, cid)

    async def predict_df(
        self,
        model: str,
        data: Any,
        version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 - each chunk's deadline
        window: int = DEFAULT_WINDOW,
        lane: Lane = "bulk",
    ) -> pd.DataFrame:
        """A DataFrame in (or a Table or dict of columns), a DataFrame out: ``predict_table``
        (any size, sent in chunks) with the answer as a pandas DataFrame that keeps the
        input DataFrame's index. Needs pandas (``ImportError`` naming the extra if not)."""
        require_pandas("predict_df")
        table = await self.predict_table(model, data, version, timeout, window, lane)
        return to_dataframe(table, input_index(data))

    def predict_chunks(
        self,
        model: str,
        chunks: Iterable[Chunk] | AsyncIterable[Chunk],
        version: str | int | None = None,
        timeout: float = 60.0,
        window: int = DEFAULT_WINDOW,
        chunk_id: str | None = None,
        chunk_count: int | None = None,
        lane: Lane = "bulk",
    ) -> AsyncIterator[ChunkResult]:
        """One ``ChunkResult`` per chunk, in order, with at most ``window`` in flight.

        The chunks' requests carry ``chunk_id`` (default: a new one), their index and
        ``chunk_count``; the first chunk's answer fixes the version of the others. A
        failed chunk is a result with its ``error``; nothing is raised for it. They go to
        the bulk lane unless ``lane`` says ``interactive``.
        """
        lane_topic(self._topics, lane)  # a lane that is not one fails here, not per chunk
        plan = ChunkPlan(
            model, None if version is None else str(version), timeout,
            chunk_id or new_chunk_id(), chunk_count, self.settings.max_message_bytes,
        )
        return predict_chunks(functools.partial(self._send_chunk, lane=lane), plan, chunks,
                              window)

    async def predict_batches(
        self,
        model: str,
        data: pa.Table | Iterable[pa.RecordBatch],
        version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 - each chunk's deadline
        window: int = DEFAULT_WINDOW,
        lane: Lane = "bulk",
    ) -> AsyncIterator[pa.Table]:
        """The answers to a table or a stream of record batches of any size, in input order.

        The input is cut into requests that fit the record limit (``chunk_count`` is sent
        when the input is a table); at most ``window`` are in flight, so memory is bounded
        by the window, not the input. Raises the first failed chunk's ``ModelbusError``,
        its message naming the rows (when the input was more than one chunk). The requests
        go to the bulk lane unless ``lane`` says ``interactive``.
        """
        total = data.num_rows if isinstance(data, pa.Table) else None
        rows, chunks = sized_chunks(
            record_batches(data), self.settings.max_message_bytes, self.settings.max_request_rows
        )
        count = chunk_count(total, rows)
        async for result in self.predict_chunks(
            model, chunks, version, timeout, window, chunk_count=count, lane=lane
        ):
            if result.error is not None:
                where = (
                    "" if count == 1 else
                    f" (rows {result.chunk.start:,} to {result.chunk.stop - 1:,})"
                )
                raise error_from_code(result.error.code, result.error.message + where)
            assert result.table is not None
            yield result.table

    async def predict_table(
        self,
        model: str,
        data: Any,
        version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 - each chunk's deadline
        window: int = DEFAULT_WINDOW,
        lane: Lane = "bulk",
    ) -> pa.Table:
        """Like ``predict`` for a table of any size: sent in chunks (to the bulk lane unless
        ``lane`` says ``interactive``), answered as one table."""
        table = as_table(data)
        parts = [part async for part in self.predict_batches(model, table, version, timeout,
                                                             window, lane)]
        if not parts:  # no rows: nothing was sent
            return await self.predict(model, table, version, timeout, lane=lane)
        return pa.concat_tables(parts)

    async def _send_chunk(
        self, model: str, body: bytes, version: str | None, timeout: float,  # noqa: ASYNC109
        headers: Mapping[str, str], *, lane: Lane = "bulk",
    ) -> tuple[dict[str, str], pa.Table]:
        return await self._request(model, body, version, timeout, extra_headers=headers,
                                   lane=lane)

    async def _request(
        self,
        model: str,
        body: bytes,
        version: str | int | None,
        timeout: float,  # noqa: ASYNC109 - the request's deadline, sent to the worker
        correlation_id: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        trace: Mapping[str, str] | None = None,
        wait: float | None = None,
        on_progress: ProgressListener | None = None,
        lane: Lane = "interactive",
    ) -> tuple[dict[str, str], pa.Table]:
        """Send one request to ``lane``; its result's headers and table, or the
        ``ModelbusError``.

        ``trace``: its trace headers; default the current OpenTelemetry span's, if any.
        Each progress notice extends the wait (``wait_after_notice``).
        """
        wait = timeout if wait is None else wait
        topic = lane_topic(self._topics, lane)
        if self._closed:
            raise ClientClosed("the client is closed")
        cid = correlation_id or uuid.uuid4().hex
        headers = {
            **(extra_headers or {}),
            **(current_trace_headers() if trace is None else trace),
            "model": model,
            "correlation_id": cid,
            "content-type": ARROW_STREAM,
            "timeout_ms": str(int(timeout * 1000)),
            NOTIFY_PROGRESS_HEADER: "true",
        }
        if version is not None:
            headers["model_version"] = str(version)
        loop = asyncio.get_running_loop()
        scope: asyncio.Timeout | None = None

        on_progress = on_progress or self._on_progress

        def noticed(notice: Mapping[str, str]) -> None:
            progress = Progress.from_headers(notice)
            if scope is not None and (when := scope.when()) is not None:
                scope.reschedule(max(when, loop.time() + wait_after_notice(wait, progress)))
            if on_progress is not None:
                try:
                    on_progress(progress)
                except Exception:  # the caller's callback never costs the answer
                    log.exception("progress_listener_failed", model=model)

        reply_to, future = self._replies.expect(cid, noticed)
        if reply_to != self._topics.results:
            headers["reply_to"] = reply_to
        try:
            async with asyncio.timeout(wait) as scope:
                await self._send(topic, self._keys.key(model), body, headers, future)
                result_headers, value = await future
        except TimeoutError:
            raise InferenceTimeout(f"no result for {model} within {wait}s") from None
        finally:
            self._replies.forget(cid)
        if result_headers.get("status") == "ok":
            return result_headers, self._decode(model, cid, value)
        code = result_headers.get("error_code", "internal")
        message = result_headers.get("error_message", "")
        if value:
            with contextlib.suppress(ValueError, AttributeError):  # body is optional detail
                message = str(json.loads(value).get("error_message", message))
        raise error_from_code(code, message)

    async def _send(
        self, topic: str, key: str, body: bytes, headers: Mapping[str, str],
        answer: asyncio.Future[Answer],
    ) -> None:
        """Publish the request, unless its answer (or the client's closing) comes first."""
        send = asyncio.ensure_future(self._writer.send(topic, key, body, headers))
        either: set[asyncio.Future[Any]] = {send, answer}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not send.done():
                send.cancel()
        if send.done() and not send.cancelled():
            try:
                send.result()  # a request the broker refused raises here
            except PublishFailed as exc:
                if exc.retriable:  # the broker kept failing for the writer's whole budget
                    raise InferenceTimeout(
                        f"the broker did not take the request: {exc.reason}"
                    ) from None
                if any(s in exc.reason for s in ("TooLarge", "too large")):
                    raise TooLarge(
                        f"the request is {len(body):,} bytes, over the record limit of "
                        f"{self._writer.max_request_size:,} bytes: send fewer rows per request"
                    ) from None
                raise BadRequest(f"the broker refused the request: {exc.reason}") from None

    def _decode(self, model: str, cid: str, value: bytes | None) -> pa.Table:
        try:
            return decode_table(
                value or b"", max_rows=self.settings.max_request_rows,
                max_decoded_bytes=self.settings.max_decoded_bytes,
            )
        except ArrowStreamTooLarge as exc:
            raise TooLarge(f"the result of {model} ({cid}) is too large: {exc}") from None
        except ArrowStreamInvalid as exc:
            raise InternalError(f"the result of {model} ({cid}) cannot be read: {exc}") from None

    async def catalog(self, timeout: float = 30.0) -> list[CatalogEntry]:  # noqa: ASYNC109
        """Every current catalog entry, sorted by name and version."""
        view = self._view()
        try:
            await view.start(catch_up_timeout_s=timeout)
            return sorted(view.entries.values(), key=lambda e: (e.name, version_order(e.version)))
        finally:
            self._views.discard(view)
            await view.stop()

    async def wait_prepared(
        self, model: str, version: str | int | None = None,
        timeout: float = 900.0,  # noqa: ASYNC109 - a deadline spanning many catalog reads
    ) -> CatalogEntry:
        """Wait until a worker reports ``model``'s ``version`` (a number, ``"@alias"`` or
        None for the newest ready) prepared, and return its catalog entry.

        Raises the error of a failed preparation (``ModelUnavailable``, …), ``ModelInvalid``
        for an invalid version, and ``InferenceTimeout`` when ``timeout`` passes first. A
        worker whose policy does not prepare the version never reports it.
        """
        spec = None if version is None else str(version)
        view = self._view()
        changes = view.changes()  # subscribed before the view starts: no change is missed
        try:
            async with asyncio.timeout(timeout):
                await view.start(catch_up_timeout_s=timeout)
                while (entry := prepared_entry(view.entries, model, spec)) is None:
                    if await anext(changes, None) is None:
                        raise ClientClosed("the client was closed while waiting")
                return entry
        except TimeoutError:
            raise InferenceTimeout(f"{model} was not prepared within {timeout}s") from None
        finally:
            self._views.discard(view)
            await view.stop()

    async def watch_catalog(self) -> AsyncGenerator[CatalogChange, None]:
        """The current entries, then every change (``entry`` None means removed).

        Ends when the client is closed.
        """
        view = self._view()
        try:
            await view.start()
            changes = view.changes()
            for key, entry in sorted(view.entries.items()):
                yield CatalogChange(key, entry)
            async for change in changes:
                yield change
        finally:
            self._views.discard(view)
            await view.stop()

    def _view(self, fetch_max_wait_ms: int | None = None) -> CatalogView:
        if self._closed:
            raise ClientClosed("the client is closed")
        view = CatalogView(
            self._kafka, self._topics.catalog,
            fetch_max_wait_ms or self.settings.kafka_catalog_fetch_max_wait_ms,
            close_timeout_s=self._close_timeout_s,
            spec=topic_spec(self.settings, "catalog"),
            create_topic=self.settings.kafka_create_topics,
        )
        self._views.add(view)
        return view
