"""What the embedded broker and MLflow server share: a child process awaited until ready."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Self

from modelbus.stack.errors import PortInUseError, StartupError
from modelbus.stack.ports import port_in_use
from modelbus.stack.process import ChildProcess


class EmbeddedServer:
    """A server run as a child process; ``start`` returns once it answers.

    Subclasses set ``name`` (of the component and its process), ``description`` (in
    messages), ``host``, ``port`` and
    ``log_path``, and say how to launch it (``_argv``, ``_env``) and how to tell that it
    is ready (``_ready``, described by ``_where`` in messages).
    """

    name = "server"
    description = "server"
    poll_interval_s = 0.1
    stop_timeout_s = 10.0
    host: str
    port: int
    log_path: Path
    _process: ChildProcess | None = None

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _where(self) -> str:
        raise NotImplementedError

    @property
    def process(self) -> ChildProcess | None:
        return self._process

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until it is ready.

        Raises ``PortInUseError`` if the port is taken, ``StartupError`` if the process
        exits or is not ready within ``timeout`` seconds (it is then stopped).
        """
        if port_in_use(self.port, self.host):
            raise PortInUseError(self.name, self.host, self.port)
        self._process = ChildProcess(
            self.name, self._argv(), env=self._env(), log_path=self.log_path
        )
        self._process.start()
        deadline = time.monotonic() + timeout
        while not self._ready():
            code = self._process.poll()
            if code is not None:
                raise StartupError(
                    f"{self.description} exited with code {code}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise StartupError(
                    f"{self.description} not ready at {self._where()} after {timeout:.0f}s; "
                    f"see {self.log_path}"
                )
            time.sleep(self.poll_interval_s)

    def poll(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self._process.poll() if self._process is not None else None

    def stop(self, timeout: float | None = None) -> None:
        if self._process is not None:
            self._process.terminate(self.stop_timeout_s if timeout is None else timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
