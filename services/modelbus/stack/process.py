"""Child processes that never outlive the stack.

Each child runs in its own process group (session), so stopping it signals every process
it spawned too: SIGTERM to the group, a grace period, then SIGKILL. On Linux the child
also asks the kernel (``prctl(PR_SET_PDEATHSIG)``) to send it SIGTERM when its parent
dies, so a killed ``modelbus up`` or a crashed test run leaves no orphans behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    # Resolved in the parent: dlopen() between fork() and exec() is not async-signal-safe.
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        return None
    return prctl


_PRCTL = _load_prctl()


def _die_with_parent_hook(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive SIGTERM when its parent dies."""

    def hook() -> None:
        if _PRCTL is None:
            return
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        # The parent may have died between fork() and prctl(): then nobody will signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return hook


def descendant_pids(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...) read from /proc."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in task.read_text().split():
                    found.append(int(child))
                    pending.append(int(child))
    return found


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class ChildProcess:
    """One supervised child process, in its own process group.

    Output goes to ``log_path`` (appended) when given, else to this process's stderr
    (the child's stdout is redirected there too, so our stdout stays ours).

    ``die_with_parent`` uses ``PR_SET_PDEATHSIG``, which the kernel ties to the *thread*
    that forked the child; it is therefore applied only when starting from the main
    thread, where a short-lived worker thread cannot take the child down with it.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_path = log_path
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Spawn the process; it is an error to start one that is still running."""
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        output: IO[bytes] | IO[str]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
            output = self._log
        else:
            output = sys.stderr
        use_hook = self.die_with_parent and threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
            preexec_fn=_die_with_parent_hook(os.getpid()) if use_hook else None,
        )

    def poll(self) -> int | None:
        """The exit code if the process has ended (it is reaped), else None."""
        return self._proc.poll() if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end; raises ``subprocess.TimeoutExpired``."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc.wait(timeout)

    def request_stop(self) -> None:
        """Send SIGTERM to the process group without waiting (see ``terminate``)."""
        if self.is_running() and self._proc is not None:
            self._signal_group(self._proc.pid, signal.SIGTERM)

    def terminate(self, timeout: float = 10.0) -> int | None:
        """Stop the whole process group: SIGTERM, wait up to ``timeout``, then SIGKILL.

        Returns the child's exit code (None if it was never started). Processes of the
        group that outlive the leader are killed as well.
        """
        proc = self._proc
        if proc is None:
            return None
        pgid = proc.pid  # start_new_session: the child leads its own group
        self._signal_group(pgid, signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(pgid, signal.SIGKILL)
            code = proc.wait()
        self._reap_group(pgid, deadline=time.monotonic() + timeout)
        self._close_log()
        return code

    def _reap_group(self, pgid: int, deadline: float) -> None:
        """Give group members that survived their leader until ``deadline``, then kill."""
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._signal_group(pgid, signal.SIGKILL)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        return f"ChildProcess({self.name!r}, pid={self.pid})"


def _group_alive(pgid: int) -> bool:
    """True if any non-zombie process still belongs to process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            # fields: state, ppid, pgrp, ...
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False
