"""Shared fixtures: the real broker, MLflow server and Docker engine, started once per session.

A component that cannot start makes every test that needs it *fail* with the reason and
the tail of its log; nothing here ever skips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from tests.support.layout import CollectedTest, layout_problems
from tests.support.settings import isolated_settings

from modelbus.stack import EmbeddedBroker, EmbeddedMlflow, StackError, free_tcp_port
from modelbus_contract.settings import ModelbusSettings

# Tests using any of these fixtures talk to real components: mark them ``integration``
# so that ``-m "not integration"`` selects the pure unit tests.
_INTEGRATION_FIXTURES = frozenset(
    {
        "kafka_bootstrap",
        "embedded_broker",
        "mlflow_tracking_uri",
        "embedded_mlflow",
        "mlflow_server_factory",
        "settings",
        "docker_client",
    }
)


# The per-test timeout of an integration test (the unit tests' is ``timeout`` in
# pyproject.toml). Their own bounds reach 1,800 s: a session fixture warming the e2e models
# (its setup counts towards the first test that uses it), a dependency install
# (``pip_timeout_s``, 900 s) followed by the test itself, the demo of ``modelbus up``.
INTEGRATION_TIMEOUT_S = 3600


TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    collected: list[CollectedTest] = []
    for item in items:
        if _INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        integration = item.get_closest_marker("integration") is not None
        if integration and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(INTEGRATION_TIMEOUT_S))
        if item.path.is_relative_to(TESTS):
            collected.append(CollectedTest(item.path.relative_to(TESTS).as_posix(), integration))
    # One naming scheme (tests/support/layout.py): a test in the wrong place stops the run.
    if problems := layout_problems(collected):
        raise pytest.UsageError(
            "tests are not where their kind belongs:\n  " + "\n  ".join(problems)
        )


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def _fail_start(what: str, exc: Exception, log_path: Path) -> None:
    pytest.fail(
        f"{what} could not start: {exc}\n--- last lines of {log_path} ---\n{_log_tail(log_path)}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The session's Tansu broker (memory storage) on a free port."""
    broker = EmbeddedBroker(free_tcp_port(), tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
    except StackError as exc:
        broker.stop()
        _fail_start("the embedded Kafka broker", exc, broker.log_path)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(embedded_broker: EmbeddedBroker) -> str:
    """``host:port`` of the session's broker."""
    return embedded_broker.bootstrap_servers


@pytest.fixture(scope="session")
def embedded_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMlflow]:
    """The session's MLflow server (SQLite, served artifacts) on a free port."""
    server = EmbeddedMlflow(free_tcp_port(), tmp_path_factory.mktemp("mlflow"))
    try:
        server.start()
    except StackError as exc:
        server.stop()
        _fail_start("the embedded MLflow server", exc, server.log_path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_tracking_uri(embedded_mlflow: EmbeddedMlflow) -> str:
    """``http://127.0.0.1:PORT`` of the session's MLflow server."""
    return embedded_mlflow.tracking_uri


@pytest.fixture
def mlflow_server_factory() -> Iterator[Callable[[Path, int], EmbeddedMlflow]]:
    """``make(data_dir, port)`` → a *started* EmbeddedMlflow, stopped after the test.

    The returned object can be ``stop()``-ped and ``start()``-ed again on the same port
    and data (an outage); ``free_tcp_port()`` gives a port.
    """
    servers: list[EmbeddedMlflow] = []

    def make(data_dir: Path, port: int) -> EmbeddedMlflow:
        server = EmbeddedMlflow(port, data_dir)
        servers.append(server)
        try:
            server.start()
        except StackError as exc:
            _fail_start(f"MLflow server on port {port}", exc, server.log_path)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def settings(kafka_bootstrap: str, mlflow_tracking_uri: str) -> ModelbusSettings:
    """Settings for one test: the session's broker and MLflow, a unique topic prefix."""
    return isolated_settings(kafka_bootstrap, mlflow_tracking_uri)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A ``docker.DockerClient`` for the local engine, checked with a ping."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        pytest.fail(
            f"the Docker engine is not reachable: {exc}\n"
            "start it (deploy/setup.sh does) or set DOCKER_HOST",
            pytrace=False,
        )
    yield client
    client.close()
