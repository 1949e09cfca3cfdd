"""What a worker prepares: the versions of the models whose requests it consumes, as the
policy says, newest first, up to a cap (pure logic).

A model's requests are keyed by its name (and ``NAME#k`` for its shards), so Kafka's
default partitioner says which partition, and so which worker of the group, gets them:
the worker holding any of those partitions prepares the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from modelbus_contract.keys import request_key
from modelbus_contract.messages import CatalogEntry, version_order
from modelbus_delivery.partitioner import keyed_partition


@dataclass(frozen=True)
class Ownership:
    """The request partitions a worker holds, out of ``count``."""

    partitions: frozenset[int]
    count: int

    def owns(self, entry: CatalogEntry) -> bool:
        """Whether any request key of the entry's model lands on a partition held here."""
        everything = list(range(self.count))
        return any(
            keyed_partition(request_key(entry.name, shard).encode(), everything, everything)
            in self.partitions
            for shard in range(entry.shards)
        )


def wanted_versions(
    entries: Iterable[CatalogEntry], policy: str, ownership: Ownership, limit: int
) -> list[CatalogEntry]:
    """The ready versions to prepare, most wanted first: under ``latest`` the newest version
    of each owned model and every version with an alias; under ``all`` every version; under
    ``none`` nothing. The newest of every model come before the second newest of any, so a
    cap of N keeps the newest versions of N models."""
    if policy == "none" or limit <= 0:
        return []
    by_model: dict[str, list[CatalogEntry]] = {}
    for entry in entries:
        if entry.status == "ready" and ownership.owns(entry):
            by_model.setdefault(entry.name, []).append(entry)
    ranked: list[tuple[int, str, CatalogEntry]] = []
    for name, versions in by_model.items():
        versions.sort(key=lambda e: version_order(e.version), reverse=True)
        for rank, entry in enumerate(versions):
            if policy == "all" or rank == 0 or entry.aliases:
                ranked.append((rank, name, entry))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [entry for _, _, entry in ranked[:limit]]
