"""A service process settles its heap before it runs: what exists is frozen, young objects are
collected less often (checked in a child process: the test session's collector is left alone)."""

from __future__ import annotations

import json
import subprocess
import sys

from modelbus.heap import OLDER_THRESHOLDS, YOUNG_THRESHOLD

CHILD = """
import gc, json
from modelbus.runner import run_service

seen = {}

async def main():
    seen["threshold"] = gc.get_threshold()
    seen["frozen"] = gc.get_freeze_count()

code = run_service("probe", main)
print(json.dumps({**seen, "code": code, "default": [700, 10, 10]}))
"""


def test_a_service_runs_with_its_heap_frozen_and_rarer_young_collections() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=120, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["code"] == 0
    assert seen["threshold"] == [YOUNG_THRESHOLD, *OLDER_THRESHOLDS]
    assert seen["frozen"] > 10_000  # the imports at least: modelbus, asyncio, pyarrow, ...
