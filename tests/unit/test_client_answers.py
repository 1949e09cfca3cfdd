"""The SDK's answers: who answered (``predict_answer``), DataFrames in and out
(``predict_df``), and a blocking client with every call of the asyncio one (same names,
same parameters), without a broker: the requests are answered by fakes."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa
import pytest

from modelbus_client import async_client, sync_client
from modelbus_client.async_client import AsyncModelbusClient
from modelbus_client.chunked_predict import ChunkResult
from modelbus_client.chunking import Chunk
from modelbus_client.prediction import Prediction, require_pandas, to_dataframe
from modelbus_client.progress import Progress
from modelbus_client.sync_client import ModelbusClient
from modelbus_contract.settings import ModelbusSettings

# What only one of the two has, by design: the blocking client connects in its constructor.
ASYNC_ONLY = {"start"}


def _public(cls: type) -> dict[str, Any]:
    return {
        name: member for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    }


def test_the_blocking_client_has_every_call_of_the_async_one() -> None:
    calls = set(_public(AsyncModelbusClient)) - ASYNC_ONLY
    assert calls - set(_public(ModelbusClient)) == set()
    assert {"predict", "predict_answer", "predict_df", "predict_table", "predict_batches",
            "predict_chunks", "catalog", "wait_prepared", "watch_catalog"} <= calls


@pytest.mark.parametrize("name", sorted(set(_public(AsyncModelbusClient)) - ASYNC_ONLY))
def test_each_twin_takes_the_same_parameters(name: str) -> None:
    twin, original = getattr(ModelbusClient, name), getattr(AsyncModelbusClient, name)
    if isinstance(original, property):
        assert isinstance(twin, property)
        return

    def shape(function: Any) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default)
                for p in inspect.signature(function).parameters.values()]

    assert shape(twin) == shape(original)


def test_the_constructors_take_the_same_parameters() -> None:
    def names(cls: type) -> list[str]:
        return list(inspect.signature(cls.__init__).parameters)

    assert names(ModelbusClient) == names(AsyncModelbusClient)


# ---------------------------------------------------------------------------------------
# the async client, its transport faked

RESULT = pa.table({"y": [1.0, 2.0, 3.0]})


class FakeTransport:
    """Stands for ``AsyncModelbusClient._request``: answers as a worker would."""

    def __init__(self, version: str = "7") -> None:
        self.version = version
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, model: str, body: bytes, version: Any,
                       timeout: float,  # noqa: ASYNC109 - as the faked method
                       correlation_id: str | None = None,
                       extra_headers: Mapping[str, str] | None = None,
                       **rest: Any) -> tuple[dict[str, str], pa.Table]:
        self.sent.append({"model": model, "version": version, "cid": correlation_id,
                          "extra": dict(extra_headers or {})})
        headers = {"status": "ok", "model": model, "model_version": self.version,
                   "correlation_id": correlation_id or "generated-by-the-worker",
                   "request_offset": "41"}
        return headers, RESULT


@pytest.fixture
def fake_async() -> tuple[AsyncModelbusClient, FakeTransport]:
    client = AsyncModelbusClient(settings=ModelbusSettings())  # connects only in start()
    transport = FakeTransport()
    client._request = transport  # type: ignore[method-assign]
    return client, transport


async def test_predict_answer_tells_the_version_that_answered_and_the_correlation_id(
    fake_async: tuple[AsyncModelbusClient, FakeTransport],
) -> None:
    client, transport = fake_async
    answer = await client.predict_answer("m", {"x": [1, 2, 3]}, correlation_id="cid-1")
    assert (answer.model, answer.model_version, answer.correlation_id) == ("m", "7", "cid-1")
    assert answer.table.equals(RESULT)
    assert answer.headers["request_offset"] == "41"
    assert transport.sent[0]["cid"] == "cid-1"
    generated = await client.predict_answer("m", {"x": [1]}, version="@prod")
    assert generated.correlation_id == transport.sent[1]["cid"]
    assert len(generated.correlation_id) == 32 and transport.sent[1]["version"] == "@prod"


async def test_predict_still_returns_a_table(
    fake_async: tuple[AsyncModelbusClient, FakeTransport],
) -> None:
    client, _ = fake_async
    table = await client.predict("m", {"x": [1, 2, 3]}, correlation_id="c")
    assert isinstance(table, pa.Table) and table.equals(RESULT)


async def test_predict_df_answers_a_dataframe_with_the_inputs_index(
    fake_async: tuple[AsyncModelbusClient, FakeTransport],
) -> None:
    client, transport = fake_async
    frame = pd.DataFrame({"x": [1, 2, 3]}, index=["a", "b", "c"])
    out = await client.predict_df("m", frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == ["a", "b", "c"] and list(out["y"]) == [1.0, 2.0, 3.0]
    assert transport.sent[0]["extra"]["chunk_index"] == "0"  # any size: sent in chunks
    plain = await client.predict_df("m", {"x": [1, 2, 3]})
    assert list(plain.index) == [0, 1, 2]


def test_prediction_of_a_result_and_its_dataframe() -> None:
    answer = Prediction.of({"model_version": "3", "status": "ok"}, RESULT, "m", "c")
    assert (answer.model, answer.model_version, answer.correlation_id) == ("m", "3", "c")
    assert list(answer.to_pandas()["y"]) == [1.0, 2.0, 3.0]
    # a shorter answer than the input keeps its own index
    assert list(to_dataframe(RESULT, pd.RangeIndex(5, 10)).index) == [0, 1, 2]


def test_without_pandas_the_dataframe_calls_say_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def no_pandas(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match=r"predict_df needs pandas.*modelbus\[pandas\]"):
        require_pandas("predict_df")


# ---------------------------------------------------------------------------------------
# the blocking client over a faked async client


class FakeAsyncClient:
    """Stands for ``AsyncModelbusClient`` inside ``ModelbusClient``."""

    instances: ClassVar[list[FakeAsyncClient]] = []

    def __init__(self, bootstrap_servers: str | None = None, **options: Any) -> None:
        self.options = options
        self.settings = ModelbusSettings()
        self.close_bound_s = 1.0
        self.reply_topic = "replies.x"
        self.calls: list[tuple[str, dict[str, Any]]] = []
        FakeAsyncClient.instances.append(self)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def predict_answer(self, model: str, data: Any, **kwargs: Any) -> Prediction:
        self.calls.append(("predict_answer", kwargs))
        on_progress = kwargs["on_progress"]
        on_progress(Progress(model, "7", "images", 1.0, 1.0))
        return Prediction(RESULT, model, "7", kwargs["correlation_id"] or "new", {})

    async def predict_table(self, model: str, data: Any, *args: Any) -> pa.Table:
        self.calls.append(("predict_table", {"args": args}))
        return RESULT

    def predict_chunks(self, model: str, chunks: Iterable[Chunk], *args: Any
                       ) -> AsyncIterator[ChunkResult]:
        self.calls.append(("predict_chunks", {"args": args}))

        async def results() -> AsyncIterator[ChunkResult]:
            self.options["on_progress"](Progress(model, "7", "container", 1.0, 1.0))
            for chunk in chunks:
                yield ChunkResult(chunk, chunk.table, None, "7")

        return results()


@pytest.fixture
def blocking(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(sync_client, "AsyncModelbusClient", FakeAsyncClient)
    FakeAsyncClient.instances.clear()
    heard: list[Progress] = []
    with ModelbusClient(on_progress=heard.append) as client:
        yield client, FakeAsyncClient.instances[0], heard


def test_the_blocking_predict_passes_the_correlation_id_and_tells_the_version(
    blocking: Any,
) -> None:
    client, fake, heard = blocking
    answer = client.predict_answer("m", {"x": [1]}, correlation_id="mine")
    assert (answer.model_version, answer.correlation_id) == ("7", "mine")
    assert client.predict("m", {"x": [1]}, correlation_id="again").equals(RESULT)
    assert [kwargs["correlation_id"] for _, kwargs in fake.calls] == ["mine", "again"]
    # the client's own listener hears the notices of calls that name none
    assert [p.step for p in heard] == ["images", "images"]


def test_the_blocking_predict_df_and_predict_chunks(blocking: Any) -> None:
    client, fake, heard = blocking
    out = client.predict_df("m", pd.DataFrame({"x": [4, 5, 6]}, index=[10, 11, 12]), "2")
    assert list(out.index) == [10, 11, 12]
    assert fake.calls[-1] == ("predict_table", {"args": ("2", 60.0, 8, "bulk")})
    chunks = [Chunk(i, i * 2, pa.table({"x": [i, i]})) for i in range(3)]
    results = list(client.predict_chunks("m", chunks, "2", 5.0, 2, "id", 3))
    assert [r.chunk.index for r in results] == [0, 1, 2]
    assert fake.calls[-1] == ("predict_chunks", {"args": ("2", 5.0, 2, "id", 3, "bulk")})
    assert heard[-1].step == "container" and client._last_notice is not None


def test_a_progress_notice_extends_a_chunked_calls_wait(blocking: Any) -> None:
    client, _, _ = blocking
    deadline = client._step_deadline(1.0)
    before = deadline()
    client._last_notice = (before + 100.0, Progress("m", "7", "images", 1.0, 30.0))
    assert deadline() >= before + 100.0 + 60.0  # two notice intervals after the notice


def test_the_async_module_is_what_the_blocking_one_wraps() -> None:
    assert sync_client.AsyncModelbusClient is async_client.AsyncModelbusClient
