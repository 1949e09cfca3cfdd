"""A service's stop is not cut short by a second stop signal (a supervisor that signals
the process group after signalling the process, a second Ctrl-C)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.waiting import wait_for

SERVICES = Path(__file__).resolve().parents[2] / "services"
_SERVICE = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from modelbus.runner import run_service
from modelbus_delivery.logs import configure_logging
configure_logging("INFO", "json", stream=sys.stdout)  # the log lines are read from stdout

async def main() -> None:
    try:
        print("running", flush=True)
        await asyncio.Event().wait()
    finally:
        print("stopping", flush=True)
        # A stop that takes a while, like closing containers: until the test says.
        await asyncio.to_thread(sys.stdin.readline)
        print("stopped cleanly", flush=True)

sys.exit(run_service("test", main))
"""


def _ignored(lines: list[str]) -> int:
    return sum("service_stop_in_progress" in line for line in lines)


def test_a_second_sigterm_does_not_cut_the_stop_short() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVICE, str(SERVICES)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in
                                                          proc.stdout or ()))
    reader.start()
    try:
        wait_for(lambda: "running" in lines, 30, 0.01, message="the service running")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping" in lines, 30, 0.01, message="its stop under way")
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        wait_for(  # both ignored, or (wrongly) the stop cut short
            lambda: _ignored(lines) == 2 or any("service_stopping" in line for line in lines),
            30, 0.01, message="the later signals handled",
        )
        proc.stdin.write("the stop may end\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(30)
    assert lines[:2] == ["running", "stopping"]
    rest = lines[2:]
    assert [line for line in rest if "service_stop_in_progress" not in line] == [
        "stopped cleanly", *(line for line in rest if "service_stopping" in line)
    ]
    assert _ignored(rest) == 2
