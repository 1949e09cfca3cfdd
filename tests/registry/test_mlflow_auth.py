"""modelbus's MLflow adapters against an MLflow server that demands credentials.

The session's MLflow server has no authentication, so each test puts an authenticating
reverse proxy in front of it (basic auth with one user, bearer auth with one token; 401
otherwise) and points the adapters at the proxy. The credentials come from MLflow's own
variables (MLFLOW_TRACKING_USERNAME / _PASSWORD, MLFLOW_TRACKING_TOKEN), read by MLflow on
every request, so each test sets exactly the ones it means and nothing depends on order.

Then a real ``modelbus discovery`` process with credentials in its tracking URI must not
print them.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from tests.support.waiting import wait_for

from modelbus.stack import free_tcp_port
from modelbus_catalog.errors import RegistryUnreachable
from modelbus_catalog.reader import MlflowModelReader
from modelbus_discovery.registry import MlflowRegistry

from .sample_models import LoggedModel, register

pytestmark = pytest.mark.integration

USER, PASSWORD, TOKEN = "modelbus-svc", "pw-0f-the-svc", "tok-5e3a9c1b"
MLFLOW_CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_AUTH",
)
# Headers a proxy must not pass on (hop-by-hop) or sets itself.
_NOT_FORWARDED = {"host", "authorization", "connection", "keep-alive", "transfer-encoding",
                  "content-length", "proxy-authorization", "te", "trailer", "upgrade"}


@dataclass
class Seen:
    method: str
    path: str
    auth: str  # "basic", "bearer" or "none"/"invalid"
    status: int


@dataclass
class AuthProxy:
    """Forwards authenticated requests to ``upstream``; answers 401 to the others."""

    upstream: str
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def uri(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def authenticate(self, header: str | None) -> str:
        if header is None:
            return "none"
        basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if header == f"Basic {basic}":
            return "basic"
        if header == f"Bearer {TOKEN}":
            return "bearer"
        return "invalid"

    def start(self) -> None:
        proxy = self
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                auth = proxy.authenticate(self.headers.get("Authorization"))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if auth not in ("basic", "bearer"):
                    proxy.seen.append(Seen(self.command, self.path, auth, 401))
                    self._answer(401, {"WWW-Authenticate": 'Basic realm="mlflow"',
                                       "Content-Type": "application/json"},
                                 b'{"error_code": "UNAUTHENTICATED", '
                                 b'"message": "You are not authenticated."}')
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _NOT_FORWARDED}
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers=headers, method=self.command
                )
                try:
                    with opener.open(request, timeout=60) as response:
                        status, reply, payload = response.status, response.headers, response.read()
                except urllib.error.HTTPError as exc:
                    status, reply, payload = exc.code, exc.headers, exc.read()
                proxy.seen.append(Seen(self.command, self.path, auth, status))
                self._answer(status, {k: v for k, v in reply.items()
                                      if k.lower() not in _NOT_FORWARDED}, payload)

            def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass  # the record in ``seen`` is the log

        # Port 0: the kernel picks a free port and we bind it in the same call (no race).
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def statuses(self) -> set[int]:
        return {s.status for s in self.seen}

    def auths(self) -> set[str]:
        return {s.auth for s in self.seen}


@pytest.fixture
def proxy(mlflow_tracking_uri: str) -> Iterator[AuthProxy]:
    auth_proxy = AuthProxy(mlflow_tracking_uri)
    auth_proxy.start()
    yield auth_proxy
    auth_proxy.stop()


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets: no credential variables, no ``~/.mlflow/credentials``."""
    for name in MLFLOW_CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    # As the services run MLflow (modelbus.wiring): a refusal is final, not retried.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


@pytest.fixture(scope="module")
def tagged_version(
    mlflow_tracking_uri: str, sample_model: LoggedModel
) -> Iterator[tuple[str, str]]:
    """A tagged version registered directly on the (unauthenticated) server: (name, version)."""
    client = MlflowClient(tracking_uri=mlflow_tracking_uri, registry_uri=mlflow_tracking_uri)
    name = f"auth-{uuid.uuid4().hex[:10]}"
    version = register(client, name, sample_model, model_tags={"datagrok": ""})
    yield name, version
    with contextlib.suppress(Exception):
        client.delete_registered_model(name)


def _read_through(uri: str, name: str, version: str) -> None:
    """List the registry and read the version's MLmodel, as discovery and catalog do."""
    snapshots = MlflowRegistry(uri, "datagrok", 50).tagged_versions()
    listed = {(s.name, s.version): s for s in snapshots}
    assert (name, version) in listed
    assert listed[(name, version)].model_tags == {"datagrok": ""}
    facts = MlflowModelReader(uri).read(name, version)
    assert facts.signature is not None and "Molecule" in facts.signature["inputs"]
    assert "python_function" in facts.flavors
    assert facts.requirements, facts.problems  # requirements.txt came through the proxy too


def _assert_all_authenticated(proxy: AuthProxy, kind: str) -> None:
    assert proxy.seen, "nothing went through the proxy"
    assert proxy.auths() == {kind}, proxy.seen
    assert proxy.statuses() == {200}, proxy.seen
    paths = [s.path for s in proxy.seen]
    assert any("/registered-models/search" in p for p in paths)
    assert any("/model-versions/search" in p for p in paths)
    # The artifacts are downloaded through the tracking URI, with the same credentials.
    assert any("/mlflow-artifacts/artifacts/" in p and p.endswith("MLmodel") for p in paths), paths


def test_basic_auth_from_username_and_password_variables(
    proxy: AuthProxy, tagged_version: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    _read_through(proxy.uri, *tagged_version)
    _assert_all_authenticated(proxy, "basic")


def test_bearer_auth_from_the_token_variable(
    proxy: AuthProxy, tagged_version: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
    _read_through(proxy.uri, *tagged_version)
    _assert_all_authenticated(proxy, "bearer")


def test_without_credentials_the_registry_refuses_and_the_adapters_say_so(
    proxy: AuthProxy, tagged_version: tuple[str, str]
) -> None:
    name, version = tagged_version
    with pytest.raises(MlflowException) as listing:
        MlflowRegistry(proxy.uri, "datagrok", 50).tagged_versions()
    # The catalog's adapter says it in its own type: refused credentials are waited for.
    with pytest.raises(RegistryUnreachable) as reading:
        MlflowModelReader(proxy.uri).read(name, version)
    assert isinstance(reading.value.__cause__, MlflowException)
    for caught in (listing, reading):
        assert "UNAUTHENTICATED" in str(caught.value), caught.value  # the proxy's 401 body
    assert proxy.statuses() == {401} and proxy.auths() == {"none"}, proxy.seen


def test_wrong_credentials_are_refused(
    proxy: AuthProxy, tagged_version: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-" + PASSWORD)
    with pytest.raises(MlflowException):
        MlflowRegistry(proxy.uri, "datagrok", 50).tagged_versions()
    assert proxy.statuses() == {401} and proxy.auths() == {"invalid"}, proxy.seen


def test_credentials_in_the_tracking_uri_never_reach_the_logs(kafka_bootstrap: str) -> None:
    secret = "s3cr3t-pw"
    closed_port = free_tcp_port()  # nothing listens: every scan fails and is logged
    tracking_uri = f"http://user:{secret}@127.0.0.1:{closed_port}"
    env = {
        key: value for key, value in os.environ.items()
        if key not in MLFLOW_CREDENTIAL_VARIABLES
    }
    env.update({
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MODELBUS_TOPIC_PREFIX": f"auth-{uuid.uuid4().hex[:12]}.",
        "MODELBUS_POLL_INTERVAL_S": "1",
        "MODELBUS_RETRY_INITIAL_S": "0.2",
        "MODELBUS_RETRY_MAX_S": "1",
        "MODELBUS_LOG_LEVEL": "DEBUG",
    })
    modelbus = Path(sys.executable).with_name("modelbus")
    proc = subprocess.Popen(
        [str(modelbus), "discovery"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.extend(proc.stdout or ()), daemon=True),
        threading.Thread(target=lambda: err.extend(proc.stderr or ()), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        wait_for(
            lambda: sum('"registry_unreachable"' in line for line in list(err)) >= 2
            or proc.poll() is not None,
            60, message="two registry_unreachable lines",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        for reader in readers:
            reader.join(timeout=5)
    printed = "".join(out) + "".join(err)
    unreachable = [line for line in err if '"registry_unreachable"' in line]
    assert len(unreachable) >= 2, printed[-3000:]
    assert secret not in printed
    assert f"http://user:***@127.0.0.1:{closed_port}" in unreachable[0]
    assert "***" in printed
