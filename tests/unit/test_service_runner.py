"""A service's stop is not cut short by a second stop signal (a supervisor that signals
the process group after signalling the process, a second Ctrl-C)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
_SERVICE = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from modelbus.runner import run_service

async def main() -> None:
    try:
        print("running", flush=True)
        await asyncio.Event().wait()
    finally:
        await asyncio.sleep(1.0)  # a stop that takes a while, like closing containers
        print("stopped cleanly", flush=True)

sys.exit(run_service("test", main))
"""


def test_a_second_sigterm_does_not_cut_the_stop_short() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVICE, str(SERVICES)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert [line for line in lines if "service_stop_in_progress" not in line] == [
        "stopped cleanly", *(line for line in lines if "service_stopping" in line)
    ]
    assert sum("service_stop_in_progress" in line for line in lines) == 2
