"""Which key a client gives a request: the model's name, or in turn one of its shards."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

from modelbus_contract.catalog_index import entries_named
from modelbus_contract.keys import request_key
from modelbus_contract.messages import CatalogEntry


class ShardKeys:
    """Request keys from the catalog's ``shards`` of each model (1 until it is known).

    A model's shard count is the largest of its versions' entries: the keys name the model,
    not a version.
    """

    def __init__(self, entries: Mapping[str, CatalogEntry]) -> None:
        self._entries = entries
        self._turns: dict[str, Iterator[int]] = {}

    def key(self, model: str) -> str:
        shards = max(
            (e.shards for e in entries_named(self._entries, model)), default=1
        )
        if shards == 1:
            return request_key(model)
        turn = self._turns.setdefault(model, itertools.count())
        return request_key(model, next(turn) % shards)
