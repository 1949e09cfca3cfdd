"""What every gateway request passes before a codec sees it: bearer tokens, the bound on
requests in flight, the body size and the deadline header; and how an error is answered
(the protocol's body, the code's status). Refusals are answered at once, never queued."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from modelbus_contract.errors import BadRequest, InternalError, ModelbusError, TooLarge
from modelbus_delivery.logs import get_logger

from .errors import GatewayRefusal, http_error, mlflow_error_body, oip_error_body
from .metrics import GatewayMetrics
from .mlflow_codec import BodyLimits

log = get_logger("gateway")

TIMEOUT_HEADER = "X-Modelbus-Timeout"
# Answered to anyone: a load balancer's probes carry no token.
OPEN_PATHS = frozenset({"/ping", "/health", "/v2/health/live", "/v2/health/ready"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class GatewayConfig:
    """The gateway's bounds (from the ``gateway_*`` settings)."""

    max_body_bytes: int = 64 * 1024 * 1024
    body: BodyLimits = field(default_factory=BodyLimits)
    max_in_flight: int = 512
    timeout_s: float = 60.0
    max_timeout_s: float = 600.0
    retry_after_s: int = 5
    tokens: frozenset[str] = frozenset()


def read_tokens(inline: str | None, file_text: str | None) -> frozenset[str]:
    """Tokens from a comma-separated value and a file's lines (blank lines and ``#``
    comments skipped)."""
    tokens = [t.strip() for t in (inline or "").split(",")]
    for line in (file_text or "").splitlines():
        if not line.strip().startswith("#"):
            tokens.append(line.strip())
    return frozenset(t for t in tokens if t)


def token_accepted(header: str | None, tokens: Iterable[str]) -> bool:
    """Whether ``Authorization: Bearer TOKEN`` names one of ``tokens`` (constant time)."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    raw = given.strip().encode()
    return any(hmac.compare_digest(raw, t.encode()) for t in tokens)


def deadline_s(header: str | None, config: GatewayConfig) -> float:
    """The request's deadline: its ``X-Modelbus-Timeout`` seconds (at most the maximum),
    else the default."""
    if header is None:
        return config.timeout_s
    try:
        value = float(header)
    except ValueError:
        raise BadRequest(f"{TIMEOUT_HEADER} is not a number of seconds: {header[:40]!r}") from None
    if not 0 < value < float("inf"):
        raise BadRequest(f"{TIMEOUT_HEADER} must be above 0, not {header[:40]!r}")
    return min(value, config.max_timeout_s)


def protocol_of(path: str) -> str:
    return "oip" if path.startswith("/v2") else "mlflow"


def error_response(error: ModelbusError, path: str, retry_after_s: int) -> web.Response:
    """``error`` answered as the path's protocol answers errors."""
    answer = http_error(error, retry_after_s)
    body = oip_error_body(answer) if protocol_of(path) == "oip" else mlflow_error_body(answer)
    return web.Response(status=answer.status, body=json.dumps(body).encode(),
                        content_type="application/json", headers=answer.headers)


class Guard:
    """The middleware: refuses at the door, measures, and turns every ``ModelbusError`` (and
    anything unexpected, as ``internal``) into its HTTP answer."""

    def __init__(self, config: GatewayConfig, metrics: GatewayMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.in_flight = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS:
            return await handler(request)
        started = time.monotonic()
        protocol = protocol_of(path)
        response = await self._guarded(request, handler)
        self.metrics.requests.labels(protocol, str(response.status)).inc()
        self.metrics.seconds.labels(protocol).observe(time.monotonic() - started)
        return response

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        config = self.config
        try:
            if config.tokens and not token_accepted(request.headers.get("Authorization"),
                                                     config.tokens):
                self.metrics.refused.labels("unauthorized").inc()
                response = error_response(
                    GatewayRefusal("unauthorized", "a valid bearer token is required"),
                    request.path, config.retry_after_s)
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            if self.in_flight >= config.max_in_flight:
                self.metrics.refused.labels("overloaded").inc()
                raise GatewayRefusal("overloaded", f"{self.in_flight} requests are in flight, "
                                     f"the most this gateway takes; retry shortly")
            length = request.content_length
            if length is not None and length > config.max_body_bytes:
                self.metrics.refused.labels("too_large").inc()
                raise TooLarge(f"the body is {length:,} bytes, over the limit of "
                               f"{config.max_body_bytes:,}")
        except ModelbusError as exc:
            return error_response(exc, request.path, config.retry_after_s)
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        try:
            return await handler(request)
        except ModelbusError as exc:
            return error_response(exc, request.path, config.retry_after_s)
        except web.HTTPRequestEntityTooLarge:
            self.metrics.refused.labels("too_large").inc()
            return error_response(
                TooLarge(f"the body is over the limit of {config.max_body_bytes:,} bytes"),
                request.path, config.retry_after_s)
        except web.HTTPException:
            raise
        except Exception as exc:
            log.exception("gateway_request_failed", path=request.path[:200])
            return error_response(InternalError(f"the gateway failed: {exc!r}"[:500]),
                                  request.path, config.retry_after_s)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.set(self.in_flight)
