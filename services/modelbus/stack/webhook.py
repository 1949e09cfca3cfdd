"""Instant discovery for ``modelbus up``: the registry webhook from MLflow to discovery.

The HMAC secret (and the key the embedded MLflow encrypts stored webhook secrets with)
are made once per data directory and kept in ``webhook-keys.json`` (mode 0600), so a
restarted stack and its MLflow database keep agreeing. The webhook itself is registered
(or updated, never duplicated) under one name at every start.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelbus.stack.errors import StartupError
from modelbus.stack.ports import free_tcp_port
from modelbus_delivery.logs import get_logger
from modelbus_discovery.webhooks import SUBSCRIBED_EVENTS, WEBHOOK_PATH

log = get_logger("stack")

WEBHOOK_NAME = "modelbus-discovery"
KEYS_FILE = "webhook-keys.json"


@dataclass(frozen=True)
class WebhookKeys:
    secret: str  # signs every delivery; discovery checks it
    encryption_key: str  # Fernet key of the embedded MLflow's webhook table


@dataclass(frozen=True)
class WebhookPlan:
    """Where discovery's receiver listens and the URL MLflow is given for it."""

    host: str
    port: int
    url: str
    keys: WebhookKeys

    def discovery_env(self) -> dict[str, str]:
        return {
            "MODELBUS_WEBHOOK_HOST": self.host,
            "MODELBUS_WEBHOOK_PORT": str(self.port),
            "MODELBUS_WEBHOOK_SECRET": self.keys.secret,
        }


def load_or_create_keys(data_dir: Path) -> WebhookKeys:
    """The keys of ``data_dir``, made on first use."""
    path = data_dir / KEYS_FILE
    try:
        stored = json.loads(path.read_text())
        return WebhookKeys(stored["secret"], stored["encryption_key"])
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError) as exc:
        raise StartupError(f"{path} is unreadable ({exc}); delete it to make new keys") from exc
    keys = WebhookKeys(
        secret=secrets.token_urlsafe(32),
        encryption_key=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump({"secret": keys.secret, "encryption_key": keys.encryption_key}, file)
    return keys


def plan_webhook(data_dir: Path, host: str, webhook_url: str | None) -> WebhookPlan:
    """A receiver on ``host``: on a free port reached by the local MLflow, or on the port
    of ``webhook_url`` (the address another MLflow server reaches it by)."""
    keys = load_or_create_keys(data_dir)
    if webhook_url:
        parts = urlsplit(webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
            raise StartupError(
                f"--webhook-url {webhook_url!r} is not http(s)://host:port[/path]"
            )
        return WebhookPlan(host, parts.port, webhook_url, keys)
    port = free_tcp_port("127.0.0.1" if host in ("0.0.0.0", "") else host)
    reach = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return WebhookPlan(host, port, f"http://{reach}:{port}{WEBHOOK_PATH}", keys)


def register_webhook(tracking_uri: str, url: str, secret: str) -> str:
    """Create or update the ``modelbus-discovery`` webhook of ``tracking_uri``; its id.

    Extra webhooks of that name (left by older runs) are deleted.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    ours: list[Any] = []
    token = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=token)
        ours.extend(w for w in page if w.name == WEBHOOK_NAME)
        token = page.token
        if not token:
            break
    events: list[Any] = list(SUBSCRIBED_EVENTS)  # "entity.action" strings MLflow accepts
    description = "modelbus discovery: rescan a registered model as soon as it changes"
    if not ours:
        return str(
            client.create_webhook(WEBHOOK_NAME, url, events, description, secret).webhook_id
        )
    for extra in ours[1:]:
        client.delete_webhook(extra.webhook_id)
    client.update_webhook(
        ours[0].webhook_id, url=url, events=events, secret=secret, status="ACTIVE"
    )
    return str(ours[0].webhook_id)


def register_or_warn(plan: WebhookPlan, tracking_uri: str) -> bool:
    """Register the webhook; on failure say so (polling still finds every change)."""
    try:
        webhook_id = register_webhook(tracking_uri, plan.url, plan.keys.secret)
    except Exception as exc:
        log.warning("webhook_not_registered", url=plan.url,
                    error=f"{type(exc).__name__}: {str(exc)[:300]}")
        return False
    log.info("webhook_registered", url=plan.url, webhook_id=webhook_id,
             events=list(SUBSCRIBED_EVENTS))
    return True
