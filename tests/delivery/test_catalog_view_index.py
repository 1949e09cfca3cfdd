"""The catalog view's index by model name follows the topic, through the real broker."""

from __future__ import annotations

from typing import Literal

import pytest
from tests.support.kafka import produce
from tests.support.settings import isolated_settings

from modelbus_contract.channels import TopicSpec
from modelbus_contract.errors import ModelNotFound
from modelbus_contract.messages import CatalogEntry
from modelbus_contract.resolve import resolve
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.topics import ensure_topics


def _entry(name: str, version: str, status: Literal["ready", "invalid"] = "ready") -> CatalogEntry:
    return CatalogEntry(name=name, version=version, status=status)


async def test_versions_by_name_follow_entries_replacements_and_tombstones(
    kafka_bootstrap: str,
) -> None:
    topic = isolated_settings(kafka_bootstrap, "http://127.0.0.1:9", "index").topics.catalog
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, compacted=True)])
    for e in (_entry("lin", "1"), _entry("lin", "2"), _entry("tree", "1")):
        await produce(kafka_bootstrap, topic, e.model_dump_json(), key=e.key)

    view = CatalogView(kafka_bootstrap, topic)
    await view.start(catch_up_timeout_s=30)
    try:
        assert sorted(e.version for e in view.entries.named("lin")) == ["1", "2"]
        assert resolve(view.entries, "lin", None).version == "2"

        # a newer version, version 2 turned invalid, version 1 removed
        for e in (_entry("lin", "3"), _entry("lin", "2", status="invalid")):
            await produce(kafka_bootstrap, topic, e.model_dump_json(), key=e.key)
        await produce(kafka_bootstrap, topic, None, key="lin/1")
        assert await view.wait_until(
            lambda entries: "lin/1" not in entries and "lin/3" in entries, 30
        )
        by_version = {e.version: e.status for e in view.entries.named("lin")}
        assert by_version == {"2": "invalid", "3": "ready"}
        assert resolve(view.entries, "lin", None).version == "3"

        await produce(kafka_bootstrap, topic, None, key="tree/1")
        assert await view.wait_until(lambda entries: "tree/1" not in entries, 30)
        assert view.entries.named("tree") == []
        with pytest.raises(ModelNotFound):
            resolve(view.entries, "tree", None)
    finally:
        await view.stop()
