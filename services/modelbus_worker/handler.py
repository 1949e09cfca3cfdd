"""One request in, its answer out: resolve, check, predict, encode (the records that carry
the answer are made by ``answering``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from modelbus_contract.errors import (
    BadRequest,
    InternalError,
    ModelbusError,
    ModelInvalid,
    ModelNotFound,
)
from modelbus_contract.messages import CatalogEntry
from modelbus_contract.resolve import resolve
from modelbus_delivery.logs import debug_enabled, get_logger

from .answer import Answer, Received
from .input_plans import InputPlans
from .ports import Predictor
from .progress_notices import ProgressNotices
from .replies import ResultEncoder
from .request import Envelope, InferenceRequest, RequestLimits, decode_body, read_request
from .schema_check import conform

log = get_logger("worker")

NOTIFY_PROGRESS = "notify_progress"  # request header: "true" asks for progress notices

# Bodies larger than this are decoded on a thread, so one big request never stalls the loop.
_OFFLOAD_DECODED_BYTES = 1 << 20


# Brings the catalog entries up to the catalog topic's end; False if it could not.
CatchUp = Callable[[], Awaitable[bool]]


class RequestHandler:
    """Decides the answer to a request: its result, or the error (and whether the request
    is kept in the DLQ)."""

    def __init__(
        self,
        entries: Mapping[str, CatalogEntry],
        predictor: Predictor,
        limits: RequestLimits,
        catch_up: CatchUp | None = None,
        notices: ProgressNotices | None = None,
        encoder: ResultEncoder | None = None,
    ) -> None:
        self._entries = entries
        self._catch_up = catch_up
        self._notices = notices
        self._predictor = predictor
        self._limits = limits
        self._encoder = encoder or ResultEncoder()
        self._plans = InputPlans()

    async def __call__(self, received: Received) -> Answer:
        headers, envelope = received.headers, received.envelope
        started = time.perf_counter()
        model, version = headers.get("model")[:256], ""
        try:
            request = read_request(envelope, headers, received.record.value, self._limits)
            entry = await self._resolve(request)
            model, version = entry.name, entry.version
            plan = self._plans.of(entry)
            if request.facts.decoded_bytes > _OFFLOAD_DECODED_BYTES:
                table = await asyncio.to_thread(
                    decode_body, request, plan.cast_bytes, self._limits)
            else:
                table = decode_body(request, plan.cast_bytes, self._limits)
            if not plan.conforms(request.facts.schema):
                table = conform(table, entry.inputs)
            prediction = self._predictor.predict(
                entry.name, entry.version, table, request.timeout_s
            )
            if self._notices is not None and headers.get(NOTIFY_PROGRESS) == "true":
                output = await self._notices.around(
                    envelope, entry.name, entry.version, prediction)
            else:
                output = await prediction
            answer = Answer(envelope, model, version, self._encoder.encode(entry, output),
                            output.num_rows)
            if debug_enabled():
                _bound(envelope, model, version).debug(
                    "request_answered", status="ok", rows=table.num_rows,
                    ms=round((time.perf_counter() - started) * 1e3, 3),
                )
            return answer
        except BadRequest as exc:
            _bound(envelope, model, version).warning(
                "request_rejected", error_code=exc.code, error=exc.message[:300]
            )
            return Answer(envelope, model, version, error=exc, keep_copy=True)
        except ModelbusError as exc:
            _bound(envelope, model, version).warning(
                "request_failed", error_code=exc.code, error=exc.message[:300]
            )
            return Answer(envelope, model, version, error=exc)
        except Exception as exc:  # a bug in modelbus: answer it, keep a copy, go on
            _bound(envelope, model, version).exception("request_crashed")
            err = InternalError(f"{type(exc).__name__}: {exc}")
            return Answer(envelope, model, version, error=err, keep_copy=True)

    async def _resolve(self, request: InferenceRequest) -> CatalogEntry:
        """The request's catalog entry. Before answering that its model is unknown or
        invalid, the catalog is caught up once: the entry the sender saw may have been
        published after this worker's view last read the topic."""
        try:
            return resolve(self._entries, request.model, request.version_spec)
        except (ModelNotFound, ModelInvalid):
            if self._catch_up is None or not await self._catch_up():
                raise
        return resolve(self._entries, request.model, request.version_spec)


def _bound(envelope: Envelope, model: str, version: str) -> Any:
    """The log with the request's correlation id and model bound (built only to log)."""
    return log.bind(
        correlation_id=envelope.correlation_id, model=model, model_version=version or None
    )
