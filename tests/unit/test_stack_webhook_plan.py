"""``modelbus up``'s webhook plan: keys kept per data directory, receiver address and URL."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from modelbus.stack.errors import StartupError
from modelbus.stack.mlflow_server import EmbeddedMlflow
from modelbus.stack.webhook import load_or_create_keys, plan_webhook


def test_keys_are_made_once_per_data_dir_and_private(tmp_path: Path) -> None:
    first = load_or_create_keys(tmp_path)
    assert load_or_create_keys(tmp_path) == first
    (tmp_path / "other").mkdir()
    assert load_or_create_keys(tmp_path / "other").secret != first.secret
    assert (tmp_path / "webhook-keys.json").stat().st_mode & 0o777 == 0o600
    assert len(base64.urlsafe_b64decode(first.encryption_key)) == 32  # a Fernet key
    assert len(first.secret) == 43


def test_unreadable_keys_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "webhook-keys.json").write_text("{")
    with pytest.raises(StartupError, match="delete it to make new keys"):
        load_or_create_keys(tmp_path)


def test_local_plan_listens_on_a_free_port_reached_over_loopback(tmp_path: Path) -> None:
    plan = plan_webhook(tmp_path, "0.0.0.0", None)
    assert plan.url == f"http://127.0.0.1:{plan.port}/mlflow-webhook"
    assert plan.discovery_env() == {
        "MODELBUS_WEBHOOK_HOST": "0.0.0.0",
        "MODELBUS_WEBHOOK_PORT": str(plan.port),
        "MODELBUS_WEBHOOK_SECRET": load_or_create_keys(tmp_path).secret,
    }


def test_given_url_sets_the_port(tmp_path: Path) -> None:
    plan = plan_webhook(tmp_path, "0.0.0.0", "https://hooks.example.org:8443/mb")
    assert (plan.host, plan.port, plan.url) == (
        "0.0.0.0", 8443, "https://hooks.example.org:8443/mb"
    )
    for bad in ("hooks.example.org:8443", "http://hooks.example.org/mb", "ftp://h:1/"):
        with pytest.raises(StartupError, match="--webhook-url"):
            plan_webhook(tmp_path, "127.0.0.1", bad)


def test_embedded_mlflow_allows_local_webhooks_only_with_a_key(tmp_path: Path) -> None:
    plain = EmbeddedMlflow(5000, tmp_path)._env()
    assert "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS" not in plain
    env = EmbeddedMlflow(5000, tmp_path, webhook_key="k")._env()
    assert {k: env[k] for k in env if k.startswith("MLFLOW_WEBHOOK_")} == {
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": "k",
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    }
