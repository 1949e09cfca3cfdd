"""The transport-free core every HTTP codec calls (as MLServer's ``DataPlane.infer``):
which catalog entry a request means, whether it can be served now, and the request itself
through the shared modelbus client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from modelbus_client.prediction import Prediction
from modelbus_client.progress import Progress, ProgressListener
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.arrow_codec import ipc_to_table
from modelbus_contract.catalog_index import entries_named
from modelbus_contract.errors import BadRequest, InferenceTimeout, ModelNotFound
from modelbus_contract.messages import PREPARING, CatalogEntry, version_order
from modelbus_contract.resolve import resolve

from .errors import ModelPreparing


class Predictor(Protocol):
    """What sends a request and awaits its answer (``AsyncModelbusClient``)."""

    async def predict_ipc(
        self, model: str, body: bytes, version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109
        correlation_id: str | None = None, wait: float | None = None,
        traceparent: str | None = None, tracestate: str | None = None,
        on_progress: ProgressListener | None = None,
    ) -> Prediction: ...

    async def predict_table(
        self, model: str, data: Any, version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109
        window: int = 8,
    ) -> pa.Table: ...


class Catalog(Protocol):
    """The catalog as this process reads it (a ``CatalogView``)."""

    @property
    def entries(self) -> Mapping[str, CatalogEntry]: ...

    async def sync(self, timeout_s: float | None = None) -> bool: ...


@dataclass(frozen=True)
class Inference:
    """One request as the codecs hand it over: an Arrow table or stream, its deadline and
    the caller's trace context."""

    model: str
    version: str | None
    table: pa.Table | None = None
    ipc: bytes | None = None
    timeout_s: float = 60.0
    traceparent: str | None = None
    tracestate: str | None = None
    entry: CatalogEntry | None = None  # resolved already by the codec's caller


class Gateway:
    """Resolves models in the catalog and sends requests through one shared client."""

    def __init__(
        self, predictor: Predictor, catalog: Catalog, max_record_bytes: int = 1_048_576
    ) -> None:
        self._predictor = predictor
        self._catalog = catalog
        self._max_record_bytes = max_record_bytes

    async def entry(self, model: str, version: str | None) -> CatalogEntry:
        """The entry ``version`` (a number, ``@alias`` or None: newest ready) of ``model``
        means; the view is caught up once before a ``ModelNotFound``."""
        try:
            return resolve(self._catalog.entries, model, version)
        except ModelNotFound:
            await self._catalog.sync()
            return resolve(self._catalog.entries, model, version)

    def versions(self, model: str) -> list[str]:
        named = entries_named(self._catalog.entries, model)
        return [e.version for e in sorted(named, key=lambda e: version_order(e.version))]

    async def infer(self, request: Inference) -> Prediction:
        """Send ``request``; its ``Prediction`` or the ``ModelbusError`` of its answer.

        A version a worker reports as being prepared is refused at once (``ModelPreparing``,
        503 with Retry-After); one whose preparation began while the request waited ends
        the same way when its deadline passes, not as a timeout.
        """
        entry = request.entry or await self.entry(request.model, request.version)
        serving = entry.serving
        if serving is not None and serving.state == PREPARING:
            raise ModelPreparing(f"{entry.key} is being prepared ({serving.step or 'queued'}); "
                                 "retry later")
        if request.ipc is not None:
            body = request.ipc
        elif request.table is not None:
            body = to_ipc_stream(request.table)
        else:
            raise BadRequest("the request has no input")
        if len(body) > self._max_record_bytes:
            return await self._in_chunks(request, entry, body)
        notices: list[Progress] = []
        try:
            return await self._predictor.predict_ipc(
                request.model, body, request.version, request.timeout_s,
                wait=request.timeout_s, traceparent=request.traceparent,
                tracestate=request.tracestate, on_progress=notices.append,
            )
        except InferenceTimeout:
            if notices:
                raise ModelPreparing(notices[-1].describe() + "; retry later") from None
            raise

    async def _in_chunks(self, request: Inference, entry: CatalogEntry, body: bytes
                         ) -> Prediction:
        """A request over one Kafka record: sent in chunks of whole rows to the version it
        resolved to, answered as one table (as ``predict_table`` does for the SDK)."""
        table = request.table
        if table is None:
            try:
                table = ipc_to_table(body)
            except (pa.ArrowInvalid, OSError) as exc:
                raise BadRequest(f"the body is not an Arrow IPC stream: {exc}") from None
        answer = await self._predictor.predict_table(
            request.model, table, entry.version, request.timeout_s)
        return Prediction(answer, request.model, entry.version, "")
