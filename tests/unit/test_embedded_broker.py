"""The embedded broker refuses a port already in use with a readable error, before it
starts anything (the broker itself: tests/stack/test_broker.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from modelbus.stack import EmbeddedBroker, PortInUseError


def test_a_busy_port_is_refused_with_a_readable_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port, tmp_path)
        with pytest.raises(PortInUseError, match=f"port {port} .* in use"):
            broker.start()
    assert broker.process is None
