"""``build_gateway``: the settings become the gateway's bounds and tokens (nothing connects
until the service starts; the application is served here by aiohttp's test server)."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from modelbus.wiring import build_gateway
from modelbus_contract.settings import ModelbusSettings


async def test_tokens_come_from_the_variable_and_the_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# the team's tokens\nfrom-file\n")
    settings = ModelbusSettings().model_copy(update={
        "gateway_tokens": SecretStr("from-env, other"), "gateway_tokens_file": str(tokens),
        "gateway_host": "127.0.0.1", "gateway_port": 0,
    })
    service = build_gateway(settings)
    assert (service.host, service.port) == ("127.0.0.1", 0)
    client = TestClient(TestServer(service.app))
    await client.start_server()
    try:
        assert (await client.get("/v2")).status == 401
        for token in ("from-env", "other", "from-file"):
            response = await client.get("/v2", headers={"Authorization": f"Bearer {token}"})
            assert response.status == 200
            assert (await response.json())["name"] == "modelbus"
        assert (await client.get("/ping")).status == 200
    finally:
        await client.close()  # the service's Kafka client never started: nothing to close


def test_the_defaults_bind_loopback_on_8080() -> None:
    fields = ModelbusSettings.model_fields
    assert (fields["gateway_host"].default, fields["gateway_port"].default) == (
        "127.0.0.1", 8080)
