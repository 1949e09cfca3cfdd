"""Garbage collection in a long-running service process.

A service imports hundreds of thousands of objects (MLflow, pyarrow, the Kafka client) that
live as long as the process, and makes a few dozen short-lived ones per request. With
CPython's defaults, a young-generation collection runs every 700 allocations and the older
generations, which hold everything imported, are traversed again and again: measured with
py-spy on a worker under load, the collector was one of the largest costs per request.
Freezing what exists once the service is built takes it out of every later collection, and
a larger young generation makes collections rarer. Reference counting still frees almost
everything at once; only reference cycles wait for a collection.
"""

from __future__ import annotations

import gc

# Allocations (net of frees) between young-generation collections; CPython's default is 700.
YOUNG_THRESHOLD = 20_000
# Young collections per middle one, and middle per old (the defaults: 10, 10).
OLDER_THRESHOLDS = (10, 10)


def settle_heap() -> None:
    """Collect once, freeze what survives (imports, settings, the built service) and make
    young-generation collections rarer. Called once per service process before it runs."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
