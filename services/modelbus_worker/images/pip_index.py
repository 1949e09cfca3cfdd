"""The package-index settings as pip and uv read them (their environment) and as a cache
key (a hash): the URLs, which may carry credentials, never appear in clear outside the
installer's environment (pure logic)."""

from __future__ import annotations

import hashlib

from modelbus_worker.settings import PipIndexSettings

# pip's own variables, one per setting: they are not on pip's command line (``ps``).
PIP_VARIABLES = {
    "index_url": "PIP_INDEX_URL",
    "extra_index_url": "PIP_EXTRA_INDEX_URL",
    "find_links": "PIP_FIND_LINKS",
    "trusted_host": "PIP_TRUSTED_HOST",
}


# uv's variables for the same settings, and how each separates several values.
UV_VARIABLES = {
    "index_url": ("UV_INDEX_URL", " "),
    "extra_index_url": ("UV_EXTRA_INDEX_URL", " "),
    "find_links": ("UV_FIND_LINKS", ","),
    "trusted_host": ("UV_INSECURE_HOST", " "),
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


def uv_environment(settings: PipIndexSettings) -> dict[str, str]:
    """The ``UV_*`` variables to add to uv's environment (only the settings that are set)."""
    out = {}
    for field, value in _values(settings).items():
        variable, separator = UV_VARIABLES[field]
        out[variable] = separator.join(value.split())
    return out


def index_fingerprint(settings: PipIndexSettings) -> str:
    """A hash of the index settings for cache keys; "" when none is set, so the keys of
    the default configuration stay what they were."""
    values = _values(settings)
    if not values:
        return ""
    text = "\n".join(f"{field}={value}" for field, value in sorted(values.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
