"""MLflow webhook deliveries: signature, freshness and payload decide the answer."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlflow.webhooks.delivery import _generate_hmac_signature

from modelbus_discovery.webhooks import (
    MAX_BODY_BYTES,
    SUBSCRIBED_EVENTS,
    Verdict,
    judge,
    sign,
)

SECRET = "s3cret-for-tests"
NOW = 1_760_000_000.0
DELIVERY = "0b7c6a9e-2f1d-4a8e-9c1b-5d2e7f3a4b6c"


def body_of(entity: str, action: str, data: object) -> bytes:
    return json.dumps(
        {"entity": entity, "action": action, "timestamp": "2025-10-09T08:53:20+00:00",
         "data": data}
    ).encode()


def signed_headers(body: bytes, secret: str = SECRET, timestamp: float = NOW) -> dict[str, str]:
    ts = str(int(timestamp))
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": DELIVERY,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": sign(secret, DELIVERY, ts, body),
    }


CREATED = body_of("model_version", "created",
                  {"name": "solubility", "version": "3", "source": "models:/m-1",
                   "run_id": "abc", "tags": {}, "description": None})


def test_our_signature_is_the_one_mlflow_sends() -> None:
    assert sign(SECRET, DELIVERY, "1760000000", CREATED) == _generate_hmac_signature(
        SECRET, DELIVERY, "1760000000", CREATED.decode()
    )


def test_signed_model_version_created_asks_for_that_model() -> None:
    assert judge(SECRET, signed_headers(CREATED), CREATED, NOW) == Verdict(
        202, "model_version.created", "solubility", DELIVERY
    )


def test_every_subscribed_event_names_its_model() -> None:
    for event in SUBSCRIBED_EVENTS:
        entity, action = event.split(".")
        body = body_of(entity, action, {"name": "m", "version": "1", "key": "k", "alias": "a"})
        verdict = judge(SECRET, signed_headers(body), body, NOW)
        assert (verdict.status, verdict.model, verdict.reason) == (202, "m", event)
    assert len(SUBSCRIBED_EVENTS) == 5


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in signed_headers(CREATED).items()}
    assert judge(SECRET, headers, CREATED, NOW).status == 202


def test_wrong_secret_is_rejected() -> None:
    verdict = judge(SECRET, signed_headers(CREATED, secret="other"), CREATED, NOW)
    assert (verdict.status, verdict.reason, verdict.model) == (401, "bad_signature", None)


def test_tampered_body_is_rejected() -> None:
    tampered = CREATED.replace(b"solubility", b"solubilitx")
    verdict = judge(SECRET, signed_headers(CREATED), tampered, NOW)
    assert (verdict.status, verdict.reason, verdict.model) == (401, "bad_signature", None)


def test_tampered_delivery_id_or_timestamp_is_rejected() -> None:
    headers = signed_headers(CREATED) | {"X-MLflow-Delivery-Id": "another-id"}
    assert judge(SECRET, headers, CREATED, NOW).reason == "bad_signature"
    headers = signed_headers(CREATED) | {"X-MLflow-Timestamp": str(int(NOW) - 1)}
    assert judge(SECRET, headers, CREATED, NOW).reason == "bad_signature"


def test_each_missing_header_is_rejected() -> None:
    for name in ("X-MLflow-Delivery-Id", "X-MLflow-Timestamp", "X-MLflow-Signature"):
        headers = {k: v for k, v in signed_headers(CREATED).items() if k != name}
        verdict = judge(SECRET, headers, CREATED, NOW)
        assert (verdict.status, verdict.reason) == (401, "missing_signature_headers"), name


def test_unsigned_call_is_rejected() -> None:
    verdict = judge(SECRET, {"Content-Type": "application/json"}, CREATED, NOW)
    assert (verdict.status, verdict.reason, verdict.model) == (
        401, "missing_signature_headers", None
    )


def test_stale_or_future_timestamp_is_rejected() -> None:
    assert judge(SECRET, signed_headers(CREATED, timestamp=NOW - 301), CREATED, NOW).reason == (
        "stale_timestamp"
    )
    assert judge(SECRET, signed_headers(CREATED, timestamp=NOW + 301), CREATED, NOW).reason == (
        "stale_timestamp"
    )
    assert judge(SECRET, signed_headers(CREATED, timestamp=NOW - 299), CREATED, NOW).status == 202


def test_non_numeric_timestamp_is_rejected() -> None:
    headers = signed_headers(CREATED) | {"X-MLflow-Timestamp": "1e9"}
    assert judge(SECRET, headers, CREATED, NOW).reason == "bad_timestamp"


def test_other_signature_versions_and_garbage_are_ignored_beside_a_good_one() -> None:
    good = signed_headers(CREATED)["X-MLflow-Signature"]
    headers = signed_headers(CREATED) | {"X-MLflow-Signature": f"v2,AAAA v1,!!! {good}"}
    assert judge(SECRET, headers, CREATED, NOW).status == 202
    headers = signed_headers(CREATED) | {"X-MLflow-Signature": "v2," + good.split(",")[1]}
    assert judge(SECRET, headers, CREATED, NOW).reason == "bad_signature"


def test_signed_event_of_no_interest_is_acknowledged_and_ignored() -> None:
    body = body_of("registered_model", "created", {"name": "m", "tags": {}})
    assert judge(SECRET, signed_headers(body), body, NOW) == Verdict(
        200, "ignored_event:registered_model.created", None, DELIVERY
    )


def test_signed_bodies_that_are_not_webhook_payloads_are_bad_requests() -> None:
    cases = {
        b"not json": "body_not_json",
        b"\xff\xfe": "body_not_json",
        b"[1, 2]": "body_not_an_object",
        b'{"entity": 1, "action": "created"}': "no_entity_or_action",
        body_of("model_version", "created", {"version": "1"}): "no_model_name",
        body_of("model_version", "created", {"name": ""}): "no_model_name",
        body_of("model_version", "created", ["m"]): "no_model_name",
    }
    for body, reason in cases.items():
        verdict = judge(SECRET, signed_headers(body), body, NOW)
        assert (verdict.status, verdict.reason, verdict.model) == (400, reason, None), body


def test_oversized_body_is_refused_before_anything_else() -> None:
    body = b" " * (MAX_BODY_BYTES + 1)
    assert judge(SECRET, signed_headers(body), body, NOW).status == 413


@given(
    headers=st.dictionaries(
        st.sampled_from(["X-MLflow-Delivery-Id", "X-MLflow-Timestamp", "X-MLflow-Signature",
                         "x-mlflow-signature", "Content-Type"]) | st.text(max_size=20),
        st.text(max_size=80),
        max_size=6,
    ),
    body=st.binary(max_size=512),
)
def test_any_unsigned_delivery_is_unauthorized_and_never_raises(
    headers: dict[str, str], body: bytes
) -> None:
    verdict = judge(SECRET, headers, body, NOW)
    assert (verdict.status, verdict.model) == (401, None)


@given(body=st.binary(max_size=512) | st.text(max_size=200).map(str.encode))
def test_any_signed_body_is_answered_never_raises(body: bytes) -> None:
    verdict = judge(SECRET, signed_headers(body), body, NOW)
    assert verdict.status in (200, 202, 400)
    assert (verdict.model is not None) == (verdict.status == 202)


@given(
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                     max_size=3),
        max_leaves=8,
    ),
    entity=st.sampled_from(["model_version", "model_version_tag", "prompt"]) | st.text(max_size=8),
    action=st.sampled_from(["created", "set", "deleted"]) | st.text(max_size=8),
)
def test_any_signed_json_payload_is_answered_never_raises(
    data: object, entity: str, action: str
) -> None:
    body = body_of(entity, action, data)
    verdict = judge(SECRET, signed_headers(body), body, NOW)
    named = isinstance(data, dict) and isinstance(data.get("name"), str) and data["name"] != ""
    if (entity, action) in {tuple(e.split(".")) for e in SUBSCRIBED_EVENTS}:
        assert (verdict.status, verdict.model) == ((202, data["name"]) if named else (400, None))
    else:
        assert (verdict.status, verdict.model) == (200, None)


def test_a_receiver_needs_a_secret_and_port_zero_means_none() -> None:
    from modelbus_contract.settings import ModelbusSettings
    from modelbus_discovery.webhook_receiver import receiver_for

    with pytest.raises(ValueError, match="MODELBUS_WEBHOOK_SECRET"):
        receiver_for(ModelbusSettings(webhook_port=8080, webhook_secret=None), print)
    assert receiver_for(ModelbusSettings(webhook_port=0, webhook_secret="s"), print) is None
