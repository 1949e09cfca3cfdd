"""Per-request catalog lookups against the catalog's size: a walk through every entry, as
the worker's ``resolve`` and the client's request keys did, beside the index by model name
that the catalog view keeps now. In-process, no broker; prints µs per lookup and the ratio.

    .venv/bin/python bench/catalog_index_bench.py
"""

from __future__ import annotations

import timeit
from collections.abc import Callable, Mapping

from modelbus_client.shards import ShardKeys
from modelbus_contract.catalog_index import CatalogEntries
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_contract.resolve import resolve

SIZES = (10, 100, 1_000, 10_000)
VERSIONS_PER_MODEL = 5


def catalog(size: int) -> dict[str, CatalogEntry]:
    """``size`` ready entries, five versions per model, like a registry's."""
    inputs = [Parameter(index=0, name="a", type="double", arrow_type="double")]
    entries = {}
    for i in range(size):
        entry = CatalogEntry(name=f"model-{i // VERSIONS_PER_MODEL}",
                             version=str(i % VERSIONS_PER_MODEL + 1), status="ready",
                             inputs=inputs)
        entries[entry.key] = entry
    return entries


def micros(call: Callable[[], object]) -> float:
    """Best of five runs, µs per call."""
    number = 2_000
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def lookups(entries: Mapping[str, CatalogEntry]) -> tuple[float, float]:
    keys = ShardKeys(entries)
    return (micros(lambda: resolve(entries, "model-1", "3")),
            micros(lambda: keys.key("model-1")))


def main() -> None:
    print("| entries | resolve: walk | resolve: index | ratio | request key: walk | "
          "request key: index | ratio |")
    print("|---|---|---|---|---|---|---|")
    for size in SIZES:
        plain = catalog(size)
        walk_resolve, walk_key = lookups(plain)
        index_resolve, index_key = lookups(CatalogEntries(plain))
        print(f"| {size:,} | {walk_resolve:.1f} µs | {index_resolve:.1f} µs | "
              f"{walk_resolve / index_resolve:.1f}x | {walk_key:.1f} µs | {index_key:.1f} µs | "
              f"{walk_key / index_key:.1f}x |")


if __name__ == "__main__":
    main()
