"""Fakes of the gateway core's ports (the predictor and the catalog) for unit tests of the
gateway's HTTP logic: the real codecs, guard and routes run over them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from modelbus_client.prediction import Prediction
from modelbus_client.progress import Progress, ProgressListener
from modelbus_contract.arrow_codec import ipc_to_table
from modelbus_contract.catalog_index import CatalogEntries
from modelbus_contract.messages import CatalogEntry, Parameter, ServingState


def column_entry(name: str = "linear", version: str = "1", **extra: Any) -> CatalogEntry:
    """``y = 2a + b`` as the catalog describes it: two double inputs, one double output."""
    return CatalogEntry(
        name=name, version=version, status="ready", aliases=extra.pop("aliases", ["stable"]),
        inputs=[Parameter(index=0, name="a", type="double", arrow_type="double",
                          semtype="Number"),
                Parameter(index=1, name="b", type="double", arrow_type="double")],
        outputs=[Parameter(index=0, name="y", type="double", arrow_type="double")],
        **extra,
    )


def tensor_entry(name: str = "tensor", version: str = "1") -> CatalogEntry:
    """A model taking float32 [-1, 3] and answering float32 [-1, 2]."""
    return CatalogEntry(
        name=name, version=version, status="ready",
        inputs=[Parameter(index=0, name="x", type="tensor", dtype="float32", shape=[-1, 3],
                          arrow_type="fixed_size_list<item: float>[3]")],
        outputs=[Parameter(index=0, name="y", type="tensor", dtype="float32", shape=[-1, 2])],
    )


def linear(table: pa.Table) -> pa.Table:
    a = table.column("a").to_pylist()
    b = table.column("b").to_pylist()
    return pa.table({"y": [2.0 * x + y for x, y in zip(a, b, strict=True)]})


@dataclass
class FakePredictor:
    """Answers with ``answer(table)``, or raises ``error``; remembers every call."""

    answer: Callable[[pa.Table], pa.Table] = linear
    error: BaseException | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    hold: asyncio.Event | None = None  # set: requests wait for it (an in-flight flood)
    notices: list[Progress] = field(default_factory=list)
    chunked: list[dict[str, Any]] = field(default_factory=list)  # predict_table's calls

    async def predict_ipc(
        self, model: str, body: bytes, version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109
        correlation_id: str | None = None, wait: float | None = None,
        traceparent: str | None = None, tracestate: str | None = None,
        on_progress: ProgressListener | None = None,
    ) -> Prediction:
        table = ipc_to_table(body)
        self.calls.append({"model": model, "version": version, "timeout": timeout,
                           "traceparent": traceparent, "tracestate": tracestate,
                           "table": table})
        for notice in self.notices:
            if on_progress is not None:
                on_progress(notice)
        if self.hold is not None:
            await self.hold.wait()
        if self.error is not None:
            raise self.error
        return Prediction(self.answer(table), model, str(version or "1"), "cid-1")


    async def predict_table(
        self, model: str, data: Any, version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109
        window: int = 8,
    ) -> pa.Table:
        self.chunked.append({"model": model, "version": version, "rows": data.num_rows})
        if self.error is not None:
            raise self.error
        return self.answer(data)


@dataclass
class FakeCatalog:
    """A catalog that holds what the test puts in it; ``sync`` counts its calls."""

    entries: CatalogEntries = field(default_factory=CatalogEntries)
    syncs: int = 0

    @classmethod
    def of(cls, *entries: CatalogEntry) -> FakeCatalog:
        return cls(CatalogEntries({e.key: e for e in entries}))

    async def sync(self, timeout_s: float | None = None) -> bool:
        self.syncs += 1
        return True


def preparing(entry: CatalogEntry) -> CatalogEntry:
    return entry.model_copy(update={"serving": ServingState(state="preparing", worker="w:1",
                                                            step="images")})

