"""A request's answer as a value (pure data).

The handler decides an answer once: its status, the model and version that answered, the
error (a typed ``ModelbusError``) or the encoded output table, and whether a copy of the
request goes to the DLQ. Metrics, tracing and the reply encoder read this value; nothing
parses the answer's headers back. A request record's headers are read once too, on the way
in (``Received``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from modelbus_contract.errors import ModelbusError
from modelbus_contract.headers import HeaderView
from modelbus_delivery.records import Inbound

from .request import Envelope

OK = "ok"
ERROR = "error"


@dataclass(frozen=True, slots=True)
class Received:
    """A request record with its headers read and its envelope made, once."""

    record: Inbound
    headers: HeaderView
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class Answer:
    """What the worker answers to one request.

    ``body`` is the output as Arrow IPC stream bytes (labelled with the catalog's names)
    when the request succeeded; ``error`` says why it did not. ``keep_copy``: the request
    itself goes to the DLQ beside the error (bad requests and modelbus' own failures).
    """

    envelope: Envelope
    model: str
    version: str
    body: bytes | None = None
    rows: int = 0
    error: ModelbusError | None = None
    keep_copy: bool = False

    @property
    def status(self) -> str:
        return OK if self.error is None else ERROR

    @property
    def error_code(self) -> str:
        return "" if self.error is None else self.error.code


# One request in, its answer out: the handler and the wrappers around it (tracing, metrics).
AnswerHandler = Callable[[Received], Awaitable[Answer]]
