"""Kafka's default partitioning of keyed records, with each key's hash remembered.

The Java client's murmur2 — which every Kafka client uses to place a key, and which puts
all requests of one model (shard) on one partition — is pure Python in aiokafka and costs
several microseconds per record. A producer sends the same few keys again and again (one
per model or shard), so the hash of each is computed once.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import DefaultPartitioner, murmur2

_KEYS_REMEMBERED = 4096
_unkeyed = DefaultPartitioner()


@lru_cache(maxsize=_KEYS_REMEMBERED)
def _positive_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def keyed_partition(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """The partition aiokafka's ``DefaultPartitioner`` chooses (murmur2 of the key modulo
    the partition count; a record without a key goes to a random available partition)."""
    if key is None:
        return int(_unkeyed(key, all_partitions, available))
    return all_partitions[_positive_hash(bytes(key)) % len(all_partitions)]
