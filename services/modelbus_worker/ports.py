"""The ports of the worker: what its parts know of one another.

The parts — the container pool (``pool/``), the request handler, batching, tracing,
measuring and preparation — depend on these ports (and on the contract, the delivery
layer and the worker's settings), never on one another; the worker service puts them
together. The container pool is the ``Predictor`` and the ``Containers``; tracing gives
batching its ``BatchSpans``.

Imports only the contract and third-party libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa

from modelbus_contract.errors import ModelbusError

# Told how a model version's start ended: model, version, its error (None: it started)
# and its seconds.
StartListener = Callable[[str, str, ModelbusError | None, float], None]


class Predictor(Protocol):
    """Runs a table through a model version (the container pool, or a wrapper of it)."""

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table: ...

    async def close(self) -> None: ...


class StartStep(Protocol):
    """Where a version's start stands: its step and when it began (monotonic seconds)."""

    @property
    def step(self) -> str: ...

    @property
    def since(self) -> float: ...


class Readiness(Protocol):
    """Whether a version is warm, and the step of its start (the container pool)."""

    def ready(self, name: str, version: str) -> bool: ...

    def progress(self, name: str, version: str) -> StartStep | None: ...


class Preparation(Protocol):
    """Gets one version ready to answer (the container pool)."""

    async def prepare(self, name: str, version: str) -> None: ...

    def ready(self, name: str, version: str) -> bool: ...


class Containers(Readiness, Preparation, Protocol):
    """What the worker asks and reports of its containers (the container pool)."""

    def container_counts(self) -> dict[str, int]: ...

    def engine_reachable(self) -> bool: ...

    def starting(self, name: str, version: str) -> bool: ...

    def add_start_listener(self, listener: StartListener) -> None: ...


class BatchSpans(Protocol):
    """Where batching notes, on each request's predict span, the model call that answered
    it (tracing gives its own; ``NO_SPANS`` records nothing)."""

    def current(self) -> Any:
        """The span current in this context (None: none)."""
        ...

    def note_batch(self, span: Any, requests: int, rows: int) -> None:
        """Record on ``span`` the requests and rows of the model call that answered it."""
        ...


class _NoSpans:
    def current(self) -> Any:
        return None

    def note_batch(self, span: Any, requests: int, rows: int) -> None:
        return None


NO_SPANS: BatchSpans = _NoSpans()
