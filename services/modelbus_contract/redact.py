"""Credentials out of text: every log line and every error message passes through ``redact``.

Masks, with ``***``:
- the password of URL userinfo (``scheme://user:pw@host`` → ``scheme://user:***@host``) and a
  lone userinfo token (``scheme://token@host`` → ``scheme://***@host``);
- ``Authorization`` values (``Authorization: Bearer abc`` → ``Authorization: Bearer ***``)
  and a bare ``Bearer <token>``;
- values of query parameters and ``key=value`` / ``"key": "value"`` pairs whose key names a
  secret (``token``, ``password``, ``secret``, ``api_key``, ``access_key``, ``signature``, ...);
- the literal values of the credential variables in ``SECRET_VARIABLES``, as set now.

Pure and stdlib-only; never raises; ``redact(redact(s)) == redact(s)``.
"""

from __future__ import annotations

import functools
import os
import re
from urllib.parse import quote, quote_plus

MASK = "***"

# Environment variables whose values are credentials, wherever they show up.
SECRET_VARIABLES = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MODELBUS_KAFKA_SASL_PASSWORD",
    "MODELBUS_KAFKA_SSL_PASSWORD",
    "MODELBUS_WEBHOOK_SECRET",
    # Package-index URLs may carry a token where no userinfo pattern finds it.
    "MODELBUS_PIP_INDEX_URL",
    "MODELBUS_PIP_EXTRA_INDEX_URL",
    "MODELBUS_PIP_FIND_LINKS",
)
# Shorter values would mask ordinary words and numbers.
MIN_SECRET_LENGTH = 4
_MAX_PASSES = 4

# scheme://USERINFO@ — greedy up to the authority's last '@' (an unencoded '@' in a password).
# The look-behind starts a scheme only at the start of a run, which keeps the scan linear.
_URL_USERINFO = re.compile(
    r"(?P<scheme>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://)"
    r"(?P<userinfo>[^\s/?#\"'<>`\\]+)@"
)
# Authorization: Basic xxx / "Authorization": "Bearer xxx" / authorization=Token xxx
_AUTHORIZATION = re.compile(
    r"(?P<head>(?i:\b(?:proxy-)?authorization)[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<scheme>(?i:basic|bearer|token|digest|negotiate)\s+)?"
    r"(?P<value>[^\s\"',;}\]]+)"
)
_BEARER = re.compile(r"(?P<head>\b(?i:bearer)\s+)(?P<value>[A-Za-z0-9\-._~+/]{8,}=*)")
_SECRET_KEY = (
    r"[\w.\-]*?"
    r"(?i:password|passwd|passphrase|pwd|secret|token|api[_\-]?key|access[_\-]?key"
    r"|private[_\-]?key|signature|credentials?|sig)s?"
)
# A field named like this holds a credential whatever its value looks like.
_SECRET_NAME = re.compile(r"(?:proxy-)?authorization|cookie|" + _SECRET_KEY, re.IGNORECASE)
_AUTH_SCHEME = re.compile(r"(?i:basic|bearer|token|digest|negotiate)\s+")
# Every key ``_SECRET_KEY`` matches contains one of these (lower-case) words.
_KEY_WORDS = ("pass", "pwd", "secret", "token", "key", "sig", "credential")
# A quoted value, escapes included (alternatives that cannot overlap: no backtracking blow-up).
_QUOTED = r"(?P<quoted>'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")"
# token=xxx (query strings, reprs, environment dumps) and password='x y' (a quoted value).
_ASSIGNMENT = re.compile(
    r"(?P<key>(?<![\w.\-])" + _SECRET_KEY + r")(?P<sep>\s*=\s*)"
    r"(?:" + _QUOTED + r"|[^\s\"'&#,;)}\]=][^\s\"'&#,;)}\]]*)"
)
# "password": "xxx" (JSON, dict reprs): only with a quoted key, so prose "token: ..." stays.
_QUOTED_PAIR = re.compile(
    r"(?P<key>(?P<kq>[\"'])" + _SECRET_KEY + r"(?P=kq)\s*:\s*)" + _QUOTED
)


def _userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:{MASK}" if colon else MASK
    return f"{match.group('scheme')}{masked}@"


def _authorization(match: re.Match[str]) -> str:
    return f"{match.group('head')}{match.group('scheme') or ''}{MASK}"


def _bearer(match: re.Match[str]) -> str:
    return f"{match.group('head')}{MASK}"


def _masked_value(match: re.Match[str]) -> str:
    quoted = match.group("quoted")
    return f"{quoted[0]}{MASK}{quoted[0]}" if quoted else MASK


def _assignment(match: re.Match[str]) -> str:
    return f"{match.group('key')}{match.group('sep')}{_masked_value(match)}"


def _quoted_pair(match: re.Match[str]) -> str:
    return f"{match.group('key')}{_masked_value(match)}"


@functools.lru_cache(maxsize=32)
def _spellings(secret: str) -> tuple[str, ...]:
    """The secret as written and as it appears percent-encoded in a URL, longest first."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    return tuple(sorted(forms, key=len, reverse=True))


def _known_secrets() -> list[str]:
    environ = os.environ
    found = []
    for name in SECRET_VARIABLES:
        value = environ.get(name)
        if value and len(value) >= MIN_SECRET_LENGTH:
            found.append(value)
    return found


def _mask_literal(text: str, secret: str) -> str:
    for spelling in _spellings(secret):
        # Each replacement shortens the text (a secret is longer than the mask), so this ends;
        # looping makes occurrences that only appear once another one is masked go too.
        while spelling in text:
            text = text.replace(spelling, MASK)
    return text


def _pass(text: str) -> str:
    for secret in _known_secrets():
        text = _mask_literal(text, secret)
    # Substring tests first: most lines contain none of the words, and then no regex runs.
    if "@" in text and "://" in text:
        text = _URL_USERINFO.sub(_userinfo, text)
    lowered = text.lower()
    if "authorization" in lowered:
        text = _AUTHORIZATION.sub(_authorization, text)
    if "bearer" in lowered:
        text = _BEARER.sub(_bearer, text)
    if any(word in lowered for word in _KEY_WORDS):
        if "=" in text:
            text = _ASSIGNMENT.sub(_assignment, text)
        if ":" in text:
            text = _QUOTED_PAIR.sub(_quoted_pair, text)
    return text


@functools.lru_cache(maxsize=1024)  # log lines repeat the same few keys
def is_secret_name(name: str) -> bool:
    """Whether a field called ``name`` (a header, a keyword, a JSON key) holds a credential."""
    return _SECRET_NAME.fullmatch(name) is not None


def redact_field(name: str, value: str) -> str:
    """The value of a field: all of it masked when the name says it is a credential (an
    ``Authorization`` value keeps its scheme: ``Basic ***``), else ``redact(value)``."""
    try:
        if is_secret_name(name):
            if not value or value == MASK:
                return value
            scheme = _AUTH_SCHEME.match(value)
            return f"{scheme.group(0)}{MASK}" if scheme else MASK
    except Exception:
        return MASK
    return redact(value)


def redact(text: str) -> str:
    """``text`` with every credential it contains replaced by ``***``."""
    try:
        if not isinstance(text, str):
            text = str(text)
        # Masking one credential can expose the shape of another (a value that ends where a
        # secret began): repeat until nothing changes, which also makes redact idempotent.
        for _ in range(_MAX_PASSES):
            masked = _pass(text)
            if masked == text:
                return text
            text = masked
        return text
    except Exception:  # a log line must never fail; fail closed rather than leak
        return f"{MASK} (redaction failed)"
