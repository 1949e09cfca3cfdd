"""Modelbus error codes as HTTP answers (pure logic): one status per code, the same for
both protocols, and the few refusals that only the gateway makes."""

from __future__ import annotations

from dataclasses import dataclass

from modelbus_contract.errors import ModelbusError, ModelUnavailable

# Every code of the contract, and the gateway's own refusals.
HTTP_STATUS: dict[str, int] = {
    "bad_request": 400,
    "schema_mismatch": 400,
    "unauthorized": 401,
    "model_not_found": 404,
    "request_timeout": 408,
    "too_large": 413,
    "unsupported_media_type": 415,
    "model_invalid": 422,
    "overloaded": 429,
    "internal": 500,
    "model_failed": 500,
    "model_unavailable": 503,
    "timeout": 504,
}


class ModelPreparing(ModelUnavailable):
    """The model version is still being prepared (files, images, container): 503 with
    ``Retry-After``, never a timeout."""


class GatewayRefusal(ModelbusError):
    """A request the gateway refuses before it reaches Kafka, with its own code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # type: ignore[misc]


@dataclass(frozen=True)
class HttpError:
    """What an error is answered with: status, headers, and the body's code and message."""

    status: int
    code: str
    message: str
    headers: dict[str, str]


def http_error(error: ModelbusError, retry_after_s: int = 5) -> HttpError:
    """The HTTP answer to ``error``: its code's status (500 for a code not known here);
    ``Retry-After`` on 503 (a version being prepared, or one not servable now) and 429."""
    status = HTTP_STATUS.get(error.code, 500)
    headers: dict[str, str] = {}
    if isinstance(error, ModelPreparing) or status == 503:
        headers["Retry-After"] = str(retry_after_s)
    elif status == 429:
        headers["Retry-After"] = "1"
    return HttpError(status, error.code, error.message, headers)


def mlflow_error_body(error: HttpError) -> dict[str, str]:
    """The body MLflow's scoring server answers errors with, plus the modelbus code."""
    return {"error_code": error.code, "message": error.message}


def oip_error_body(error: HttpError) -> dict[str, str]:
    """The Open Inference Protocol's error body (``error``), plus the modelbus code."""
    return {"error": error.message, "error_code": error.code}
