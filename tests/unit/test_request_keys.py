"""Request keys: a model's name, or in turn one of its shards' keys."""

from __future__ import annotations

from modelbus_client.shards import ShardKeys
from modelbus_contract.keys import request_key
from modelbus_contract.messages import CatalogEntry


def _entry(name: str, version: str, shards: int) -> CatalogEntry:
    return CatalogEntry(name=name, version=version, status="ready", shards=shards)


def test_a_request_is_keyed_by_its_model_name() -> None:
    assert request_key("iris") == "iris"
    assert request_key("iris", 0) == "iris"
    assert request_key("iris", 3) == "iris#3"


def test_keys_take_the_shards_in_turn_and_the_name_until_the_catalog_says() -> None:
    entries: dict[str, CatalogEntry] = {}
    keys = ShardKeys(entries)
    assert [keys.key("hot") for _ in range(3)] == ["hot"] * 3
    entries["hot/1"] = _entry("hot", "1", 1)
    entries["hot/2"] = _entry("hot", "2", 3)  # the largest of the model's versions counts
    entries["cold/1"] = _entry("cold", "1", 1)
    assert [keys.key("hot") for _ in range(7)] == [
        "hot", "hot#1", "hot#2", "hot", "hot#1", "hot#2", "hot",
    ]
    assert [keys.key("cold") for _ in range(2)] == ["cold", "cold"]
