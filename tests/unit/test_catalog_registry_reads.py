"""Reading a version from the registry: MLflow's failures in the catalog's types (decided
by type, never by message), and the retrying reader's waits and give-ups (fake clock)."""

from __future__ import annotations

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException

from modelbus_catalog.entry import ModelFacts
from modelbus_catalog.errors import ModelUnreadable, RegistryUnreachable
from modelbus_catalog.reader import MlflowModelReader, registry_error
from modelbus_catalog.retrying_reader import MAX_UNEXPECTED_FAILURES, RetryingReader
from modelbus_contract.messages import DiscoveryEvent
from modelbus_delivery.retry import Backoff


def _rest(code: str) -> RestException:
    return RestException({"error_code": code, "message": "from the server"})


def _http(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} error", response=response)


def _as_mlflow_raises_it(cause: Exception, *, chained: bool) -> MlflowException:
    """MLflow's ``http_request`` turns a timeout into an MlflowException ``from`` it, and
    any other failure into one raised while handling it."""
    try:
        try:
            raise cause
        except Exception as exc:
            if chained:
                raise MlflowException("API request failed with timeout exception") from exc
            raise MlflowException(f"API request failed with exception {exc}")  # noqa: B904
    except MlflowException as wrapped:
        return wrapped


@pytest.mark.parametrize("failure", [
    requests.exceptions.ConnectionError("Max retries exceeded"),
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.RetryError("too many 503 error responses"),
    ConnectionRefusedError(111, "refused"),
    _as_mlflow_raises_it(requests.exceptions.ConnectionError("refused"), chained=False),
    _as_mlflow_raises_it(requests.exceptions.ConnectTimeout("slow"), chained=True),
    _rest("UNAUTHENTICATED"),
    _rest("PERMISSION_DENIED"),
    _rest("TEMPORARILY_UNAVAILABLE"),
    _rest("REQUEST_LIMIT_EXCEEDED"),
    _http(401), _http(403), _http(502), _http(503),
])
def test_an_unreachable_or_refusing_registry_is_registry_unreachable(failure: Exception) -> None:
    assert isinstance(registry_error(failure), RegistryUnreachable)


@pytest.mark.parametrize("code", ["RESOURCE_DOES_NOT_EXIST", "NOT_FOUND",
                                  "INVALID_PARAMETER_VALUE"])
def test_an_answer_that_will_not_change_is_model_unreadable(code: str) -> None:
    assert isinstance(registry_error(_rest(code)), ModelUnreadable)


@pytest.mark.parametrize("failure", [
    MlflowException("the server said: connection refused, timeout, 401"),  # words, no type
    _rest("INTERNAL_ERROR"),
    _http(404),
    ValueError("unexpected"),
])
def test_anything_else_stays_what_it_was(failure: Exception) -> None:
    assert registry_error(failure) is failure


def test_the_reader_raises_the_translation_with_mlflow_s_error_as_its_cause() -> None:
    refused = _rest("UNAUTHENTICATED")

    class RefusingClient:
        def get_model_version_download_uri(self, name: str, version: str) -> str:
            raise refused

    reader = MlflowModelReader("http://registry.invalid")
    reader._client = RefusingClient()  # type: ignore[assignment]
    with pytest.raises(RegistryUnreachable, match="UNAUTHENTICATED") as caught:
        reader.read("m", "1")
    assert caught.value.__cause__ is refused


EVENT = DiscoveryEvent(kind="found", name="m", version="1", fingerprint="f")
FACTS = ModelFacts(signature={"inputs": "[]"}, flavors={"python_function": {}})


class ScriptedReader:
    """Fails with ``failures`` in turn, then answers ``FACTS``."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.reads = 0

    def read(self, name: str, version: str) -> ModelFacts:
        self.reads += 1
        if self.failures:
            raise self.failures.pop(0)
        return FACTS


class FakeSleep:
    """Records each wait and what the reader said about the registry meanwhile."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.ok_while_waiting: list[bool | None] = []
        self.reader: RetryingReader | None = None

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        assert self.reader is not None
        self.ok_while_waiting.append(self.reader.last_read_ok)


def _retrying(reader: ScriptedReader) -> tuple[RetryingReader, FakeSleep]:
    sleep = FakeSleep()
    retrying = RetryingReader(reader, lambda: Backoff(1.0, 4.0), sleep=sleep)
    sleep.reader = retrying
    return retrying, sleep


async def test_an_unreachable_registry_is_waited_for_however_long_it_takes() -> None:
    reader = ScriptedReader(*[RegistryUnreachable("down")] * 8)
    retrying, sleep = _retrying(reader)
    assert await retrying.read(EVENT) == FACTS
    assert (reader.reads, len(sleep.waits)) == (9, 8)
    assert max(sleep.waits) <= 4.0 and min(sleep.waits) >= 0.8  # backoff up to its maximum
    assert sleep.ok_while_waiting == [False] * 8
    assert retrying.last_read_ok is True


async def test_other_failures_give_up_after_the_budget_with_facts_that_say_so() -> None:
    reader = ScriptedReader(*[RuntimeError(f"bug {n}") for n in range(10)])
    retrying, sleep = _retrying(reader)
    facts = await retrying.read(EVENT)
    assert facts.problems == [f"reading the model failed: bug {MAX_UNEXPECTED_FAILURES - 1}"]
    assert (reader.reads, len(sleep.waits)) == (MAX_UNEXPECTED_FAILURES,
                                                MAX_UNEXPECTED_FAILURES - 1)
    assert retrying.last_read_ok is True  # the registry answered: not an outage


async def test_outages_do_not_count_against_the_budget() -> None:
    failures = [RuntimeError("bug")] * (MAX_UNEXPECTED_FAILURES - 1)
    reader = ScriptedReader(*failures, *[RegistryUnreachable("down")] * 3)
    retrying, _ = _retrying(reader)
    assert await retrying.read(EVENT) == FACTS


async def test_unreadable_files_are_facts_at_once() -> None:
    reader = ScriptedReader(ModelUnreadable("cannot read MLmodel: gone"))
    retrying, sleep = _retrying(reader)
    facts = await retrying.read(EVENT)
    assert facts.problems == ["model files unreadable: cannot read MLmodel: gone"]
    assert (sleep.waits, retrying.last_read_ok) == ([], True)
