"""The package-index settings as pip reads them (its environment) and as a cache key (a
hash): the URLs, which may carry credentials, never appear in clear outside pip's
environment (pure logic)."""

from __future__ import annotations

import hashlib

from modelbus_worker.pool.settings import PipIndexSettings

# pip's own variables, one per setting: they are not on pip's command line (``ps``).
PIP_VARIABLES = {
    "index_url": "PIP_INDEX_URL",
    "extra_index_url": "PIP_EXTRA_INDEX_URL",
    "find_links": "PIP_FIND_LINKS",
    "trusted_host": "PIP_TRUSTED_HOST",
}


def _values(settings: PipIndexSettings) -> dict[str, str]:
    out = {}
    for field in PIP_VARIABLES:
        value = getattr(settings, field)
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        if text and text.strip():
            out[field] = " ".join(text.split())
    return out


def pip_environment(settings: PipIndexSettings) -> dict[str, str]:
    """The ``PIP_*`` variables to add to pip's environment (only the settings that are set)."""
    return {PIP_VARIABLES[field]: value for field, value in _values(settings).items()}


def index_fingerprint(settings: PipIndexSettings) -> str:
    """A hash of the index settings for cache keys; "" when none is set, so the keys of
    the default configuration stay what they were."""
    values = _values(settings)
    if not values:
        return ""
    text = "\n".join(f"{field}={value}" for field, value in sorted(values.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
