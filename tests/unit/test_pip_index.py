"""Package-index settings → pip's environment and cache keys; credentials never in clear."""

from __future__ import annotations

import pytest

from modelbus_contract.errors import ModelUnavailable
from modelbus_contract.redact import redact
from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.images.pip_index import index_fingerprint, pip_environment
from modelbus_worker.images.requirements import pip_platforms, requirements_hash
from modelbus_worker.images.wheelhouse import pip_download_command, wheelhouse_key
from modelbus_worker.settings import ContainerSettings, PipIndexSettings

PRIVATE = "http://user:s3cret-token@127.0.0.1:8080/simple"
INTERPRETER = Interpreter("3.11", "2.36")


def test_only_the_settings_that_are_set_reach_pips_environment() -> None:
    settings = PipIndexSettings(
        extra_index_url=f" {PRIVATE}  https://download.pytorch.org/whl/cpu ",  # type: ignore[arg-type]
        trusted_host="127.0.0.1",
    )
    assert pip_environment(settings) == {
        "PIP_EXTRA_INDEX_URL": f"{PRIVATE} https://download.pytorch.org/whl/cpu",
        "PIP_TRUSTED_HOST": "127.0.0.1",
    }
    assert pip_environment(PipIndexSettings()) == {}


def test_settings_come_from_modelbus_pip_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELBUS_PIP_INDEX_URL", PRIVATE)
    monkeypatch.setenv("MODELBUS_PIP_FIND_LINKS", "/srv/wheels")
    settings = ContainerSettings()
    assert pip_environment(settings.pip) == {
        "PIP_INDEX_URL": PRIVATE, "PIP_FIND_LINKS": "/srv/wheels",
    }
    # Neither the settings' repr nor pip's command line shows the URL.
    assert "s3cret" not in repr(settings)
    command = pip_download_command(INTERPRETER, ContainerSettings().cache_dir, settings.cache_dir)
    assert not any("s3cret" in part or "127.0.0.1" in part for part in command)


def test_the_index_is_part_of_the_cache_key_as_a_hash_only() -> None:
    plain = ContainerSettings(pip=PipIndexSettings())
    private = ContainerSettings(pip=PipIndexSettings(index_url=PRIVATE))  # type: ignore[arg-type]
    other = ContainerSettings(
        pip=PipIndexSettings(index_url=PRIVATE.replace("s3cret", "other"))  # type: ignore[arg-type]
    )
    reqs = ["pandas", "pyarrow"]
    assert index_fingerprint(plain.pip) == ""
    fingerprint = index_fingerprint(private.pip)
    assert len(fingerprint) == 16 and "s3cret" not in fingerprint
    keys = {wheelhouse_key(s, reqs, INTERPRETER) for s in (plain, private, other)}
    assert len(keys) == 3
    # Without index settings the key is what it always was.
    before = requirements_hash(reqs, f"3.11|{','.join(pip_platforms('2.36'))}")
    assert wheelhouse_key(plain, reqs, INTERPRETER) == before


def test_credentials_in_index_urls_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    assert redact(f"Looking in indexes: {PRIVATE}") == (
        "Looking in indexes: http://user:***@127.0.0.1:8080/simple"
    )
    assert redact("https://gh_token123@pkgs.example.com/simple") == (
        "https://***@pkgs.example.com/simple"
    )
    # The configured URL as a whole, wherever it appears (e.g. without its scheme).
    token_url = "pkgs.example.com/simple?key=abc"
    monkeypatch.setenv("MODELBUS_PIP_EXTRA_INDEX_URL", token_url)
    assert redact(f"index {token_url} refused") == "index *** refused"
    message = ModelUnavailable(f"x==1: no matching version (pip: {PRIVATE})").message
    assert "s3cret" not in message
