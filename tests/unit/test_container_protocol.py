"""Pure frame encoding/decoding and the blocking socket helpers (no Docker)."""

from __future__ import annotations

import socket
import threading

import pytest

from modelbus_worker.runtime.protocol import (
    HEADER,
    Kind,
    ProtocolError,
    decode_frame,
    decode_header,
    decode_json,
    encode_error,
    encode_frame,
    encode_json,
    recv_frame,
    send_frame,
)


def test_frame_round_trip() -> None:
    frame = encode_frame(Kind.PREDICT, b"abc")
    assert len(frame) == HEADER.size + 3
    assert decode_frame(frame) == (Kind.PREDICT, b"abc")
    assert decode_frame(encode_frame(Kind.PING)) == (Kind.PING, b"")


def test_bad_headers_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="unknown frame kind"):
        decode_header(b"\x00\x00\x00\x00\x63")
    with pytest.raises(ProtocolError, match="short"):
        decode_header(b"\x00\x00")
    with pytest.raises(ProtocolError, match="has 1"):
        decode_frame(encode_frame(Kind.RESULT, b"ab")[:-1])


def test_error_payload_round_trip_and_garbage() -> None:
    info = decode_json(encode_error("ValueError", "bad x", "predict"))
    assert info == {"type": "ValueError", "message": "bad x", "stage": "predict"}
    assert decode_json(b"\xff\xfe")["type"] == "ProtocolError"


def test_large_frame_over_a_socket_pair() -> None:
    left, right = socket.socketpair()
    payload = bytes(range(256)) * 40_000  # ~10 MB, more than any socket buffer
    sender = threading.Thread(target=send_frame, args=(left, Kind.RESULT, payload))
    sender.start()
    try:
        assert recv_frame(right) == (Kind.RESULT, payload)
    finally:
        sender.join()
        left.close()
    with pytest.raises(EOFError):
        recv_frame(right)
    right.close()


def test_load_and_loaded_round_trip_and_kind_numbers_are_stable() -> None:
    frame = encode_frame(Kind.LOAD, encode_json({"model": "/sock/model"}))
    kind, payload = decode_frame(frame)
    assert kind == Kind.LOAD and decode_json(payload) == {"model": "/sock/model"}
    kind, payload = decode_frame(encode_frame(Kind.LOADED, encode_json({"load_s": 0.2})))
    assert kind == Kind.LOADED and decode_json(payload) == {"load_s": 0.2}
    assert [k.value for k in Kind] == [1, 2, 3, 4, 5, 6, 7]
    assert [k.name for k in Kind][5:] == ["LOAD", "LOADED"]
