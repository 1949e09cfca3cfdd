"""Request decoding under attack (hypothesis): any body, content type and header is either
decoded or refused with a modelbus error (a clear 4xx), never a crash; the JSON bounds
check measures exactly what a parser would nest."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.gateway_fakes import column_entry, tensor_entry

from modelbus_contract.errors import BadRequest, ModelbusError, TooLarge
from modelbus_gateway import oip_codec
from modelbus_gateway.errors import HTTP_STATUS
from modelbus_gateway.http_guard import GatewayConfig, deadline_s, read_tokens, token_accepted
from modelbus_gateway.json_limits import check_json_bounds
from modelbus_gateway.mlflow_codec import DECODERS, BodyLimits, decode

LIMITS = BodyLimits(max_json_depth=8, max_json_elements=2_000, max_rows=1_000,
                    max_decoded_bytes=1_000_000)
ENTRIES = [None, column_entry(), tensor_entry()]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=4),
    max_leaves=30,
)
scoring_keys = st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs",
                                "params", "columns", "data"])
scoring_bodies = st.dictionaries(scoring_keys, json_values, max_size=3)
content_types = st.sampled_from([*DECODERS, None, "", "text/plain", "application/json; x=1"])
any_bytes = st.binary(max_size=300)


def refused_clearly(exc: ModelbusError) -> None:
    assert 400 <= HTTP_STATUS[exc.code] < 500, exc.code
    assert exc.message


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(any_bytes, scoring_bodies.map(lambda d: json.dumps(d).encode())),
       content_type=content_types, entry=st.sampled_from(ENTRIES))
def test_any_scoring_body_is_decoded_or_refused(
    body: bytes, content_type: str | None, entry: Any
) -> None:
    try:
        decoded = decode(content_type, body, entry, LIMITS)
    except ModelbusError as exc:
        refused_clearly(exc)
        return
    assert (decoded.table is None) != (decoded.ipc is None)


@settings(max_examples=200, deadline=None)
@given(inputs=st.lists(st.fixed_dictionaries(
    {"name": st.text(max_size=4), "shape": st.lists(st.integers(-2, 4), max_size=3),
     "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "BOOL", "XX"]),
     "data": json_values}), max_size=3),
    header=st.none() | st.integers(-5, 400).map(str) | st.text(max_size=5),
    tail=any_bytes, entry=st.sampled_from(ENTRIES))
def test_any_oip_request_is_decoded_or_refused(
    inputs: list[dict[str, Any]], header: str | None, tail: bytes, entry: Any
) -> None:
    body = json.dumps({"inputs": inputs}).encode() + tail
    try:
        oip_codec.decode_infer(body, header, entry, LIMITS)
    except ModelbusError as exc:
        refused_clearly(exc)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_the_bounds_see_the_depth_a_parser_sees(value: Any) -> None:
    body = json.dumps(value).encode()
    check_json_bounds(body, depth(value), 10**9)
    if depth(value) > 0:
        try:
            check_json_bounds(body, depth(value) - 1, 10**9)
            raise AssertionError("a body deeper than the bound passed")
        except BadRequest:
            pass


@settings(max_examples=200, deadline=None)
@given(body=any_bytes, max_depth=st.integers(1, 5), max_elements=st.integers(1, 50))
def test_the_bounds_never_fail_otherwise(body: bytes, max_depth: int, max_elements: int) -> None:
    with contextlib.suppress(BadRequest, TooLarge):
        check_json_bounds(body, max_depth, max_elements)


@settings(max_examples=200, deadline=None)
@given(header=st.none() | st.text(max_size=12) | st.floats().map(str))
def test_any_deadline_header_is_a_bounded_deadline_or_a_bad_request(header: str | None) -> None:
    config = GatewayConfig(timeout_s=60.0, max_timeout_s=600.0)
    try:
        value = deadline_s(header, config)
    except BadRequest:
        return
    assert 0 < value <= 600.0


@settings(max_examples=200, deadline=None)
@given(header=st.none() | st.text(max_size=20), token=st.text(min_size=1, max_size=8))
def test_only_the_exact_bearer_token_is_accepted(header: str | None, token: str) -> None:
    tokens = read_tokens(None, token)
    expected = tokens and header is not None and (
        header.partition(" ")[0].lower() == "bearer"
        and header.partition(" ")[2].strip() in tokens)
    assert token_accepted(header, tokens) == bool(expected)


def test_tokens_from_a_value_and_a_file() -> None:
    assert read_tokens("a, b,,", "# comment\nc\n\n d \n") == {"a", "b", "c", "d"}
    assert token_accepted("Bearer c", {"c"}) and token_accepted("bearer  c ", {"c"})
    assert not token_accepted("Basic c", {"c"})
