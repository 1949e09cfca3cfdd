"""Error codes of the public contract: one exception class per stable ``error_code``.

A worker answers every failed request with one of these codes (result header
``error_code`` and the JSON error body); the client raises the matching class.
"""

from __future__ import annotations

from typing import ClassVar

from .redact import redact


class ModelbusError(Exception):
    """Base of every error that is answered to whoever sent the request.

    The message is redacted once, here: it goes to requesters (error results), the DLQ and
    the logs, and may quote a URL or an exception that carries credentials.
    """

    code: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message


class ModelNotFound(ModelbusError):
    """No catalog entry matches the requested model, version or alias."""

    code = "model_not_found"


class BadRequest(ModelbusError):
    """The request cannot be read: missing header, body that is not Arrow IPC, ..."""

    code = "bad_request"


class SchemaMismatch(ModelbusError):
    """The request's columns or types do not match the model's catalog inputs."""

    code = "schema_mismatch"


class ModelInvalid(ModelbusError):
    """The catalog entry exists but is marked invalid (see its problems)."""

    code = "model_invalid"


class ModelFailed(ModelbusError):
    """The model raised, or its container died twice while serving the request."""

    code = "model_failed"


class ModelUnavailable(ModelbusError):
    """The model version cannot be served here: its requirements cannot be resolved or
    installed, or no interpreter of its Python version can run it. The message leads with
    the decisive reason; the model's owner, not modelbus, has to act."""

    code = "model_unavailable"


class InferenceTimeout(ModelbusError):
    """No answer within the request's deadline."""

    code = "timeout"


class TooLarge(ModelbusError):
    """The request or the result exceeds the configured size limit."""

    code = "too_large"


class InternalError(ModelbusError):
    """Anything unexpected in modelbus itself (a bug or an unavailable dependency)."""

    code = "internal"


ERRORS_BY_CODE: dict[str, type[ModelbusError]] = {
    cls.code: cls
    for cls in (
        ModelNotFound,
        BadRequest,
        SchemaMismatch,
        ModelInvalid,
        ModelFailed,
        ModelUnavailable,
        InferenceTimeout,
        TooLarge,
        InternalError,
    )
}


def error_from_code(code: str, message: str) -> ModelbusError:
    """The exception for an ``error_code`` read off a result (unknown codes → base class)."""
    cls = ERRORS_BY_CODE.get(code, ModelbusError)
    err = cls(message)
    if cls is ModelbusError:
        err.code = code  # type: ignore[misc]
    return err
