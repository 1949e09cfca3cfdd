"""MLflow registry webhooks: verify a delivery and say which registered model it concerns.

Pure logic: no I/O. MLflow (≥ 3.3) signs ``{delivery id}.{timestamp}.{body}`` with
HMAC-SHA256 under the webhook's secret and sends ``v1,<base64 digest>`` in
``X-MLflow-Signature``, the id in ``X-MLflow-Delivery-Id`` and the Unix time in
``X-MLflow-Timestamp``. The JSON body is ``{"entity", "action", "timestamp", "data"}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

SIGNATURE_HEADER = "X-MLflow-Signature"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
SIGNATURE_VERSION = "v1"
WEBHOOK_PATH = "/mlflow-webhook"  # where discovery's receiver takes deliveries

MAX_BODY_BYTES = 256 * 1024
MAX_AGE_S = 300.0  # older (or this far in the future) deliveries may be replays

# (entity, action) of the events that can change what discovery announces.
MODEL_EVENTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("model_version", "created"),
        ("model_version_tag", "set"),
        ("model_version_tag", "deleted"),
        ("model_version_alias", "created"),
        ("model_version_alias", "deleted"),
    }
)
# The same, in the "entity.action" form MlflowClient.create_webhook takes.
SUBSCRIBED_EVENTS: tuple[str, ...] = tuple(sorted(f"{e}.{a}" for e, a in MODEL_EVENTS))


@dataclass(frozen=True)
class Verdict:
    """How to answer one delivery: HTTP ``status``, the ``model`` to rescan (if any), and
    ``reason`` (for the log; never the secret or the signature)."""

    status: int
    reason: str
    model: str | None = None
    delivery_id: str = ""


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` value MLflow sends for this delivery."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header by case-insensitive name ('' when absent)."""
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), "")


def _signature_matches(secret: str, delivery_id: str, timestamp: str, body: bytes,
                       header: str) -> bool:
    expected = base64.b64decode(sign(secret, delivery_id, timestamp, body).split(",", 1)[1])
    matched = False
    for candidate in header.split():  # Standard Webhooks: space-separated "version,sig"
        version, _, encoded = candidate.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(given, expected)
    return matched


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float,
           max_age_s: float = MAX_AGE_S) -> str | None:
    """None if the delivery is signed with ``secret`` and fresh; else why not."""
    delivery_id = _header(headers, DELIVERY_ID_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not (delivery_id and timestamp and signature):
        return "missing_signature_headers"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return "bad_timestamp"
    if abs(now - int(timestamp)) > max_age_s:
        return "stale_timestamp"
    if not _signature_matches(secret, delivery_id, timestamp, body, signature):
        return "bad_signature"
    return None


def model_of(body: bytes) -> tuple[str | None, str]:
    """(registered model to rescan or None, reason) for a verified body.

    Raises ``ValueError`` when the body is not an MLflow webhook payload.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("body_not_json") from exc
    if not isinstance(payload, dict):
        raise ValueError("body_not_an_object")
    entity, action, data = payload.get("entity"), payload.get("action"), payload.get("data")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise ValueError("no_entity_or_action")
    if (entity, action) not in MODEL_EVENTS:
        return None, f"ignored_event:{entity[:60]}.{action[:60]}"
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError("no_model_name")
    return name, f"{entity}.{action}"


def judge(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    """The answer to one delivery: 401 unless signed and fresh, 400 for a body that is not
    a webhook payload, 202 with the model to rescan, 200 for events of no interest."""
    delivery_id = _header(headers, DELIVERY_ID_HEADER)[:80]
    if len(body) > MAX_BODY_BYTES:
        return Verdict(413, "body_too_large", delivery_id=delivery_id)
    problem = verify(secret, headers, body, now)
    if problem is not None:
        return Verdict(401, problem, delivery_id=delivery_id)
    try:
        model, reason = model_of(body)
    except ValueError as exc:
        return Verdict(400, str(exc), delivery_id=delivery_id)
    return Verdict(200 if model is None else 202, reason, model, delivery_id)
