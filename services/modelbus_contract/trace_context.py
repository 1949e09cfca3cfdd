"""W3C Trace Context on requests: ``traceparent`` and ``tracestate`` (pure logic).

A request may carry the two headers of the W3C Trace Context recommendation. A worker
echoes them on every answer to the request (result, error result; the DLQ copy keeps the
request's headers as they came), so a tracing system can join the answer to the trace of
whoever sent the request. Following the recommendation, a header that is not valid is
ignored, never an error: the request is answered as usual and the header is not echoed.
A ``tracestate`` is only used alongside a valid ``traceparent``.
"""

from __future__ import annotations

import re

from .headers import HeaderView

TRACE_HEADERS = ("traceparent", "tracestate")
MAX_TRACESTATE_CHARS = 512
MAX_TRACESTATE_MEMBERS = 32

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_TRACEPARENT_V00_CHARS = 55
_KEY_CHARS = r"[a-z0-9_\-*/]"
_MEMBER = re.compile(
    rf"(?:[a-z]{_KEY_CHARS}{{0,255}}"  # simple-key
    rf"|[a-z0-9]{_KEY_CHARS}{{0,240}}@[a-z]{_KEY_CHARS}{{0,13}})"  # tenant-id@system-id
    r"=([\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e])"
)


def valid_traceparent(value: str) -> bool:
    """``version-traceid-parentid-flags`` in lowercase hex, ids not all zeros.

    Version ``00`` is exactly that; a later version may append ``-``-separated fields
    (which are kept); version ``ff`` is invalid.
    """
    match = _TRACEPARENT.match(value)
    if match is None:
        return False
    version, trace_id, parent_id, _ = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return False
    if version == "00":
        return len(value) == _TRACEPARENT_V00_CHARS
    return len(value) == _TRACEPARENT_V00_CHARS or value[_TRACEPARENT_V00_CHARS] == "-"


def valid_tracestate(value: str) -> bool:
    """At most 512 characters; up to 32 ``key=value`` list-members with distinct keys,
    separated by commas and optional spaces or tabs (empty members are allowed)."""
    if len(value) > MAX_TRACESTATE_CHARS:
        return False
    keys: set[str] = set()
    for raw in value.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        if _MEMBER.fullmatch(member) is None:
            return False
        key = member.split("=", 1)[0]
        if key in keys:
            return False
        keys.add(key)
    return len(keys) <= MAX_TRACESTATE_MEMBERS


def trace_headers(headers: HeaderView) -> dict[str, str]:
    """The trace headers of a request that are valid, to be echoed on its answers.

    A header sent more than once with different values is not valid.
    """
    traceparent = headers.values.get("traceparent")
    if (
        traceparent is None
        or "traceparent" in headers.conflicting
        or not valid_traceparent(traceparent)
    ):
        return {}
    out = {"traceparent": traceparent}
    tracestate = headers.values.get("tracestate")
    if (
        tracestate is not None
        and tracestate.strip(" \t,")
        and "tracestate" not in headers.conflicting
        and valid_tracestate(tracestate)
    ):
        out["tracestate"] = tracestate
    return out
