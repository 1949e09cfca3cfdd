"""Record keys of requests: what decides which partition, and so which worker, gets them.

Requests are keyed by model name, so Kafka's default partitioner puts every request of a
model on one partition of the requests topic, which one worker of the group consumes: a
model's containers run on that worker only (model affinity), whatever the number of workers.
A model with K shards (catalog entry ``shards``) is keyed ``NAME``, ``NAME#1``, …,
``NAME#K-1`` in turn: up to K partitions, and so up to K workers, share it.
"""

from __future__ import annotations


def request_key(model: str, shard: int = 0) -> str:
    """The key of a request for ``model`` on ``shard`` (0: the model's name itself)."""
    return model if shard == 0 else f"{model}#{shard}"
