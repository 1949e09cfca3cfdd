"""The HTTP endpoint MLflow posts registry webhooks to (``POST /mlflow-webhook``).

A verified delivery about a registered model asks discovery to rescan that model now;
anything else changes nothing. Rejections are logged as warnings, without the secret
or the signature.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.logs import get_logger

from .webhooks import MAX_BODY_BYTES, WEBHOOK_PATH, Verdict, judge

log = get_logger("discovery.webhooks")

class WebhookReceiver:
    """Listens on ``host:port``; calls ``on_model(name)`` for each verified model event."""

    def __init__(
        self,
        host: str,
        port: int,
        secret: str,
        on_model: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("a webhook port needs a webhook secret (MODELBUS_WEBHOOK_SECRET)")
        self.host = host
        self.port = port
        self._secret = secret
        self._on_model = on_model
        self._clock = clock
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(WEBHOOK_PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("webhook_receiver_started", host=self.host, port=self.port, path=WEBHOOK_PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            verdict = Verdict(413, "body_too_large")
        else:
            verdict = judge(self._secret, request.headers, body, self._clock())
        fields = {"status": verdict.status, "reason": verdict.reason,
                  "delivery_id": verdict.delivery_id, "remote": request.remote}
        if verdict.status >= 400:
            log.warning("webhook_rejected", **fields)
        elif verdict.model is not None:
            log.info("webhook_model_changed", model=verdict.model, **fields)
            self._on_model(verdict.model)
        else:
            log.info("webhook_ignored", **fields)
        return web.json_response({"result": verdict.reason}, status=verdict.status)


def receiver_for(settings: ModelbusSettings, on_model: Callable[[str], None]) -> (
    WebhookReceiver | None
):
    """The receiver the settings ask for (None when ``webhook_port`` is 0)."""
    if not settings.webhook_port:
        return None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    return WebhookReceiver(settings.webhook_host, settings.webhook_port, secret, on_model)
