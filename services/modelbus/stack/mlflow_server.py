"""The embedded MLflow tracking server: ``mlflow server`` with SQLite and local artifacts."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from modelbus.stack.embedded import EmbeddedServer
from modelbus.stack.process import ChildProcess


def mlflow_healthy(tracking_uri: str, timeout: float = 2.0) -> bool:
    """True if ``GET {tracking_uri}/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def local_webhook_env(encryption_key: str) -> dict[str, str]:
    """MLflow server variables for webhooks to a receiver on this machine or network.

    MLflow refuses plain ``http`` and private or loopback addresses by default (SSRF
    protection); a server that is itself local may call them. A webhook list cached for
    a second lets a moved webhook take effect at once.
    """
    return {
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": encryption_key,
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    }


class EmbeddedMlflow(EmbeddedServer):
    """An ``mlflow server`` child process keeping its state under ``data_dir``.

    ``data_dir/mlflow.db`` holds runs and the registry, ``data_dir/artifacts`` the files
    (served through the server, so clients need no shared filesystem); the log goes to
    ``data_dir/logs/mlflow.log``. Stopping and starting again on the same ``data_dir``
    keeps every experiment and model version.

    With ``webhook_key`` (a Fernet key, kept with the data so that stored webhook secrets
    stay readable across restarts) the server delivers registry webhooks to local
    ``http`` URLs such as discovery's receiver.
    """

    name = "mlflow"
    description = "mlflow server"
    poll_interval_s = 0.2
    stop_timeout_s = 15.0

    def __init__(
        self,
        port: int,
        data_dir: Path | str,
        host: str = "127.0.0.1",
        allowed_hosts: Sequence[str] = (),
        webhook_key: str | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.data_dir = Path(data_dir).resolve()
        self.allowed_hosts = tuple(allowed_hosts)
        self.webhook_key = webhook_key
        self.log_path = self.data_dir / "logs" / "mlflow.log"
        self._process: ChildProcess | None = None

    @property
    def tracking_uri(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def _argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.data_dir / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.data_dir / "artifacts"),
            "--serve-artifacts",
            "--workers",
            "1",
        ]
        if self.allowed_hosts:
            argv += ["--allowed-hosts", ",".join(self.allowed_hosts)]
        return argv

    def start(self, timeout: float = 120.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        super().start(timeout)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # The server's background job runner (huey consumers) serves features the
        # embedded stack does not use and costs seven extra processes.
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        env.pop("MLFLOW_TRACKING_URI", None)
        if self.webhook_key:
            env.update(local_webhook_env(self.webhook_key))
        return env

    def _ready(self) -> bool:
        return mlflow_healthy(self.tracking_uri)

    def _where(self) -> str:
        return self.tracking_uri

    def __repr__(self) -> str:
        return f"EmbeddedMlflow({self.tracking_uri}, data_dir={self.data_dir})"
