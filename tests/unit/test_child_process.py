"""The child-process helper: whole process groups stop, nothing outlives its parent."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.waiting import wait_for

from modelbus.stack.process import ChildProcess, descendant_pids, pid_alive


def test_terminate_stops_the_child_and_its_descendants(tmp_path: Path) -> None:
    child = ChildProcess("sleepers", ["sh", "-c", "sleep 300 & sleep 300 & wait"])
    child.start()
    assert child.pid is not None
    pid = child.pid
    wait_for(lambda: len(descendant_pids(pid)) == 2, timeout=10, message="two grandchildren")
    pids = [pid, *descendant_pids(pid)]

    child.terminate(timeout=5)

    assert not child.is_running()
    assert [pid for pid in pids if pid_alive(pid)] == []


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    code = textwrap.dedent(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
        time.sleep(300)
        """
    )
    child = ChildProcess("stubborn", [sys.executable, "-c", code], log_path=log)
    child.start()
    wait_for(lambda: "ignoring SIGTERM" in log.read_text(), timeout=10, message="handler set")
    pid = child.pid

    assert child.terminate(timeout=0.5) == -signal.SIGKILL
    assert pid is not None and not pid_alive(pid)


def test_output_goes_to_the_log_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "echo.log"
    child = ChildProcess("echo", ["sh", "-c", "echo out; echo err >&2"], log_path=log)
    child.start()
    assert child.wait(timeout=10) == 0
    child.terminate()
    assert sorted(log.read_text().split()) == ["err", "out"]


def test_children_die_when_their_parent_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    parent_code = textwrap.dedent(
        f"""
        import pathlib, time
        from modelbus.stack.process import ChildProcess
        child = ChildProcess("orphan-to-be", ["sleep", "300"])
        child.start()
        pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))
        time.sleep(300)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        grandchild = int(
            wait_for(lambda: pid_file.exists() and pid_file.read_text(), 20, message="pid file")
        )
        assert pid_alive(grandchild)

        parent.kill()
        parent.wait(timeout=10)

        wait_for(lambda: not pid_alive(grandchild), timeout=10, message="grandchild gone")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
