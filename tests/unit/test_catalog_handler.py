"""The catalog's handler as a plain function: a discovered record in, the entry out."""

from __future__ import annotations

import pytest

from modelbus.wiring import build_catalog
from modelbus_catalog.entry import ModelFacts
from modelbus_contract.messages import CatalogEntry, DiscoveryEvent
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.records import Inbound, PoisonRecord

SETTINGS = ModelbusSettings.model_construct()


class FixedReader:
    """The registry's MLmodel reader, answering one signature for every version."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, str]] = []

    def read(self, name: str, version: str) -> ModelFacts:
        self.reads.append((name, version))
        signature = {"inputs": '[{"type": "double", "name": "a"}]'}
        return ModelFacts(signature=signature, flavors={"python_function": {}})


def _record(value: bytes | None, key: bytes = b"m/1") -> Inbound:
    return Inbound(SETTINGS.topics.discovered, 0, 5, key, value)


def _event(kind: str) -> bytes:
    event = DiscoveryEvent(kind=kind, name="m", version="1",  # type: ignore[arg-type]
                           model_tags={"datagrok": ""}, fingerprint="f")
    return event.model_dump_json().encode()


async def test_a_found_event_becomes_its_entry_keyed_name_slash_version() -> None:
    reader = FixedReader()
    (out,) = await build_catalog(SETTINGS, reader).handle_record(_record(_event("found")))
    entry = CatalogEntry.model_validate_json(out.value or b"")
    assert (out.topic, out.key, entry.status) == (SETTINGS.topics.catalog, b"m/1", "ready")
    assert [p.name for p in entry.inputs] == ["a"]
    assert reader.reads == [("m", "1")]


async def test_a_removed_event_is_a_tombstone_and_reads_nothing() -> None:
    reader = FixedReader()
    (out,) = await build_catalog(SETTINGS, reader).handle_record(_record(_event("removed")))
    assert (out.key, out.value, reader.reads) == (b"m/1", None, [])


async def test_a_tombstone_on_the_discovered_topic_publishes_nothing() -> None:
    assert await build_catalog(SETTINGS, FixedReader()).handle_record(_record(None)) == []


@pytest.mark.parametrize("value", [b"", b"\xff\xfe", b"{}", b'{"kind": "found"}', b"[1]"])
async def test_a_record_that_is_not_a_discovery_event_is_poison(value: bytes) -> None:
    with pytest.raises(PoisonRecord, match="not a discovery event"):
        await build_catalog(SETTINGS, FixedReader()).handle_record(_record(value))


@pytest.mark.parametrize(
    ("value", "allowed", "problem"),
    [(None, True, False), ("off", False, False), ("False", False, False), ("0", False, False),
     ("on", True, False), ("", True, False), ("sometimes", True, True)],
)
def test_the_batching_tag_opts_a_version_out(
    value: str | None, allowed: bool, problem: bool
) -> None:
    from modelbus_catalog.entry import batching_allowed

    problems: list[str] = []
    tags = {} if value is None else {"modelbus.batching": value}
    assert batching_allowed(tags, problems) is allowed
    assert bool(problems) is problem


@pytest.mark.parametrize(
    ("value", "shards", "problem"),
    [(None, 1, False), ("", 1, False), ("4", 4, False), (" 64 ", 64, False), ("1", 1, False),
     ("0", 1, True), ("65", 1, True), ("-2", 1, True), ("two", 1, True), ("\u0663", 1, True)],
)
def test_the_shards_tag_spreads_a_model_over_keys(
    value: str | None, shards: int, problem: bool
) -> None:
    from modelbus_catalog.entry import shard_count

    problems: list[str] = []
    tags = {} if value is None else {"modelbus.shards": value}
    assert shard_count(tags, problems) == shards
    assert bool(problems) is problem
