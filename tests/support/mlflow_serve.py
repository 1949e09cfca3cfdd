"""``mlflow models serve --env-manager local`` as a child process: the peer the gateway is
compared with (tests and the gateway bench)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.waiting import wait_for

from modelbus.stack.ports import free_tcp_port


class MlflowServe:
    """One serve process (its own process group) for ``model_uri`` on a free port."""

    def __init__(self, model_uri: str, tracking_uri: str, log_path: Path) -> None:
        self.port = free_tcp_port()
        self.argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                     "--env-manager", "local", "-p", str(self.port), "--host", "127.0.0.1"]
        # mlflow runs ``uvicorn`` by name: the venv's bin directory must be on PATH.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        # The registry too: a test of this process may have pointed mlflow's registry URI
        # elsewhere (``mlflow.set_registry_uri`` sets MLFLOW_REGISTRY_URI for children).
        self.env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
                    "MLFLOW_REGISTRY_URI": tracking_uri, "PATH": path}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180.0) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._pinged, timeout_s, interval=0.3, message="mlflow models serve /ping")

    def _pinged(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow models serve exited {self.proc.returncode}:\n{tail}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait_s)
                break
        with contextlib.suppress(ProcessLookupError):  # uvicorn children of the group
            os.killpg(self.proc.pid, signal.SIGKILL)
