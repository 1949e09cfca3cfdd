"""W3C trace headers on requests: which are valid, which are echoed, none ever raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider

from modelbus_client.trace_context import current_trace_headers, request_trace_headers
from modelbus_contract.headers import read_headers
from modelbus_contract.trace_context import trace_headers, valid_traceparent, valid_tracestate

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("value", [
    TRACEPARENT,
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # a later version, as is
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-brings",
])
def test_valid_traceparents(value: str) -> None:
    assert valid_traceparent(value)


@pytest.mark.parametrize("value", [
    "",
    "not a traceparent",
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace id
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # all-zero parent id
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff
    "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # uppercase hex
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # v00 has 4 fields
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
    "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",  # 31 hex digits
    " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0\u0661",  # a non-ASCII digit
])
def test_invalid_traceparents(value: str) -> None:
    assert not valid_traceparent(value)


@pytest.mark.parametrize("value", [
    "",
    "congo=t61rcWkgMzE",
    "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    "rojo=00f067aa0ba902b7 ,\tcongo=t61rcWkgMzE,,",
    "fw529a3039@dt=000000003ade7af8",  # tenant@system
    "a*b/c_d-e=value with spaces",
    "k=" + "v" * 256,  # the longest value
    ",".join(f"k{n}=v" for n in range(32)),
])
def test_valid_tracestates(value: str) -> None:
    assert valid_tracestate(value)


@pytest.mark.parametrize("value", [
    "Rojo=1",  # keys are lowercase
    "rojo",  # no value
    "rojo=",  # empty value
    "rojo=a,rojo=b",  # a key twice
    "rojo=a=b",  # '=' in a value
    "rojo=\x01",  # a control character
    "rojo=caf\u00e9",  # not ASCII
    "1abc=x",  # a simple key starts with a letter
    "tenant@System=x",
    ",".join(f"k{n}=v" for n in range(33)),  # 33 members
    "k=" + "v" * 257,  # a value of 257 characters
    "a=" + "b" * 200 + ",c=" + "d" * 200 + ",e=" + "f" * 200,  # over 512 characters
])
def test_invalid_tracestates(value: str) -> None:
    assert not valid_tracestate(value)


def _echoed(*headers: tuple[str, bytes]) -> dict[str, str]:
    return trace_headers(read_headers(headers))


def test_valid_headers_are_echoed() -> None:
    assert _echoed(("traceparent", TRACEPARENT.encode()), ("tracestate", b"rojo=1")) == {
        "traceparent": TRACEPARENT, "tracestate": "rojo=1",
    }
    assert _echoed(("traceparent", TRACEPARENT.encode())) == {"traceparent": TRACEPARENT}
    # The same value twice is one header.
    assert _echoed(("traceparent", TRACEPARENT.encode()),
                   ("traceparent", TRACEPARENT.encode())) == {"traceparent": TRACEPARENT}


def test_what_is_not_valid_is_not_echoed() -> None:
    other = TRACEPARENT.replace("b7ad", "c7ad")
    assert _echoed(("traceparent", b"00-nope")) == {}
    assert _echoed(("traceparent", b"00-nope"), ("tracestate", b"rojo=1")) == {}
    assert _echoed(("tracestate", b"rojo=1")) == {}  # a tracestate needs a traceparent
    assert _echoed(("traceparent", TRACEPARENT.encode()),
                   ("traceparent", other.encode())) == {}  # which one? neither
    assert _echoed(("traceparent", TRACEPARENT.encode()), ("tracestate", b"Bad")) == {
        "traceparent": TRACEPARENT,
    }
    assert _echoed(("traceparent", TRACEPARENT.encode()), ("tracestate", b"a=1"),
                   ("tracestate", b"b=2")) == {"traceparent": TRACEPARENT}
    assert _echoed(("traceparent", TRACEPARENT.encode()), ("tracestate", b" ,")) == {
        "traceparent": TRACEPARENT,
    }
    assert _echoed(("traceparent", TRACEPARENT.encode()[:-1] + b"\xff")) == {}


def test_a_bad_trace_header_is_no_problem_of_the_request() -> None:
    view = read_headers([("traceparent", b"\xff\xfe"), ("traceparent", b"x"),
                         ("model", b"m")])
    assert view.problems == ()
    assert view.conflicting == frozenset({"traceparent"})


@given(st.lists(st.tuples(
    st.sampled_from(["traceparent", "tracestate", "model"]) | st.text(max_size=12),
    st.binary(max_size=80) | st.sampled_from([TRACEPARENT.encode(), b"rojo=1", b""]),
), max_size=6))
def test_any_header_bytes_never_raise(headers: list[tuple[str, bytes]]) -> None:
    echoed = trace_headers(read_headers(headers))
    assert set(echoed) <= {"traceparent", "tracestate"}
    assert "tracestate" not in echoed or "traceparent" in echoed
    assert all(valid_traceparent(v) for k, v in echoed.items() if k == "traceparent")


@given(st.text(max_size=600))
def test_any_text_is_judged_without_raising(value: str) -> None:
    assert valid_traceparent(value) in (True, False)
    assert valid_tracestate(value) in (True, False)


def test_the_client_sends_given_headers_after_checking_them() -> None:
    assert request_trace_headers(TRACEPARENT, "rojo=1") == {
        "traceparent": TRACEPARENT, "tracestate": "rojo=1",
    }
    assert request_trace_headers(TRACEPARENT) == {"traceparent": TRACEPARENT}
    with pytest.raises(ValueError, match="not a valid W3C traceparent"):
        request_trace_headers("00-nope")
    with pytest.raises(ValueError, match="not a valid W3C tracestate"):
        request_trace_headers(TRACEPARENT, "Bad")
    with pytest.raises(ValueError, match="a tracestate needs a traceparent"):
        request_trace_headers(None, "rojo=1")


def test_the_client_sends_the_current_spans_context() -> None:
    assert current_trace_headers() == {}  # no span is current
    assert request_trace_headers() == {}
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("caller") as span:
        context = span.get_span_context()
        flags = int(context.trace_flags)
        expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
        assert request_trace_headers() == {"traceparent": expected}
        assert request_trace_headers(TRACEPARENT) == {"traceparent": TRACEPARENT}
