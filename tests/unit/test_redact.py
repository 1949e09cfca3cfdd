"""Credentials never survive ``redact``: in URLs, headers, query strings, reprs, or as the
literal values of the credential variables; ordinary text goes through unchanged.

Also the two places that apply it: ``ModelbusError`` messages and every JSON log line.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import redirect_stderr

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelbus_contract.errors import ERRORS_BY_CODE, ModelbusError, error_from_code
from modelbus_contract.redact import MASK, SECRET_VARIABLES, redact, redact_field
from modelbus_delivery.logs import configure_logging, get_logger, redact_secrets


@pytest.fixture(autouse=True)
def _no_secret_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:pw@host:5000/api", f"http://user:{MASK}@host:5000/api"),
        ("https://alice:p%40ss@mlflow.example.com", f"https://alice:{MASK}@mlflow.example.com"),
        ("https://alice:p@ss@mlflow.example.com/x", f"https://alice:{MASK}@mlflow.example.com/x"),
        ("postgresql://tok3n@db:5432/mlflow", f"postgresql://{MASK}@db:5432/mlflow"),
        ("uri='http://u:x@h'", f"uri='http://u:{MASK}@h'"),
        ("Authorization: Basic dXNlcjpwdw==", f"Authorization: Basic {MASK}"),
        ("authorization: bearer abc.def.ghi", f"authorization: bearer {MASK}"),
        ("{'Authorization': 'Bearer eyJhbGciOi'}", f"{{'Authorization': 'Bearer {MASK}'}}"),
        ('"authorization": "Token 0123"', f'"authorization": "Token {MASK}"'),
        ("sent Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", f"sent Bearer {MASK}"),
        ("/search?max_results=5&page_token=abc", f"/search?max_results=5&page_token={MASK}"),
        (
            "?X-Amz-Signature=f00d&X-Amz-Credential=AKIA/x",
            f"?X-Amz-Signature={MASK}&X-Amz-Credential={MASK}",
        ),
        ("/blob?sv=2021&sig=abc%3D&se=1", f"/blob?sv=2021&sig={MASK}&se=1"),
        ("?api_key=k1&apikey=k2&access_key=k3", f"?api_key={MASK}&apikey={MASK}&access_key={MASK}"),
        ("client_secret=s3 next", f"client_secret={MASK} next"),
        ("password='a b,c' rest", f"password='{MASK}' rest"),
        ('{"password": "hunter22", "user": "bob"}', f'{{"password": "{MASK}", "user": "bob"}}'),
        ("{'sasl_plain_password': 'x'}", f"{{'sasl_plain_password': '{MASK}'}}"),
    ],
)
def test_credentials_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "registry_unreachable",
        "http://127.0.0.1:5000/api/2.0/mlflow/registered-models/search",
        "Invalid token: the signature has expired",  # prose about tokens is not a token
        "write to me@example.com or visit https://example.com/a@b",
        "a bearer of good news",
        "token == other",
        "tokenizer=bert max_results=100 passes=3",
        "ConnectionRefusedError: [Errno 111] Connection refused",
        "MLFLOW_TRACKING_URI=http://mlflow:5000",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("variable", SECRET_VARIABLES)
def test_values_of_the_credential_variables_are_masked_anywhere(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "p@ss w0rd!")
    text = "failed with p@ss w0rd! (url http://u:p%40ss%20w0rd%21@h and form p%40ss+w0rd%21)"
    out = redact(text)
    assert "w0rd" not in out
    assert out == f"failed with {MASK} (url http://u:{MASK}@h and form {MASK})"


def test_values_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    assert redact("value s3cr3t-v4lue") == "value s3cr3t-v4lue"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "s3cr3t-v4lue")
    assert redact("value s3cr3t-v4lue") == f"value {MASK}"


def test_short_variable_values_are_not_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "abc")
    assert redact("abc abcd") == "abc abcd"


def test_a_value_that_is_not_a_string_is_printed_then_redacted() -> None:
    assert redact(["http://u:pw@h"]) == f"['http://u:{MASK}@h']"  # type: ignore[arg-type]


def test_pathological_inputs_take_linear_time() -> None:
    inputs = [
        "a." * 100_000 + "://",
        "password='" + "\\\\" * 100_000,
        "http://" + "x" * 200_000,
        "token=" * 50_000,
        "'" + "password" * 25_000,
        "Authorization: " * 20_000,
    ]
    for text in inputs:
        started = time.monotonic()
        redact(text)
        assert time.monotonic() - started < 2.0, text[:40]


def test_a_typical_log_line_costs_microseconds() -> None:
    line = json.dumps({
        "event": "registry_unreachable", "level": "warning", "failures": 3,
        "error": "MlflowException: API request to http://127.0.0.1:5000/api/2.0/mlflow/"
                 "registered-models/search failed: Connection refused",
    })
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        redact(line)
    per_line = (time.perf_counter() - started) / runs
    assert per_line < 500e-6, f"{per_line * 1e6:.0f} µs per line"


# -- properties ---------------------------------------------------------------------------

_SECRET = st.text(
    # what an environment variable can hold: no NUL, no lone surrogates
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=4, max_size=24
).filter(lambda s: s.strip() == s and s.strip())
_WORD = st.from_regex(r"[A-Za-z0-9_\-.]{1,12}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_redact_is_idempotent_and_total(text: str) -> None:
    once = redact(text)
    assert isinstance(once, str)
    assert redact(once) == once


# Text built from the pieces the patterns look for, so the patterns meet each other.
_PIECES = st.lists(
    st.sampled_from([*"ab:/@?&=#'\" \\*.-_", "http://", "password", "token", "Bearer ",
                     "Authorization: ", "Basic ", "sig", "'token': ", "%40", "s3cr"]),
    max_size=30,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(_PIECES)
def test_redact_is_idempotent_where_patterns_overlap(text: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_PASSWORD", "s3cr3t")
        once = redact(text)
        assert redact(once) == once
        assert "s3cr3t" not in once


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=100), _SECRET, st.text(max_size=100))
def test_a_variable_value_never_survives(before: str, secret: str, after: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELBUS_KAFKA_SASL_PASSWORD", secret)
        out = redact(before + secret + after)
        assert secret not in out
        assert redact(out) == out


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["http", "https", "postgresql+psycopg2", "s3"]),
    _WORD,
    st.from_regex(r"[A-Za-z0-9!$&()*+,;=~%:\-._@]{1,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9.\-]{1,20}(:[0-9]{1,5})?", fullmatch=True),
)
def test_a_url_password_never_survives(scheme: str, user: str, password: str, host: str) -> None:
    out = redact(f"GET {scheme}://{user}:{password}@{host}/path failed")
    assert out == f"GET {scheme}://{user}:{MASK}@{host}/path failed"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["token", "access_token", "password", "client_secret", "api_key",
                     "X-Amz-Signature", "sig", "AccessKey"]),
    st.from_regex(r"[A-Za-z0-9%\-._~+/]{1,40}", fullmatch=True),
)
def test_a_secret_query_parameter_never_survives(name: str, value: str) -> None:
    out = redact(f"https://h/p?a=1&{name}={value}&b=2")
    assert out == f"https://h/p?a=1&{name}={MASK}&b=2"


# -- ModelbusError ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ModelbusError, *ERRORS_BY_CODE.values()])
def test_error_messages_are_redacted_at_construction(cls: type[ModelbusError]) -> None:
    err = cls("cannot read m/1 from the registry at http://bob:hunter22@mlflow:5000: refused")
    assert "hunter22" not in err.message
    assert err.message == (
        f"cannot read m/1 from the registry at http://bob:{MASK}@mlflow:5000: refused"
    )
    assert str(err) == err.message
    assert err.args == (err.message,)


def test_errors_read_off_a_result_are_redacted_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123456")
    err = error_from_code("model_failed", "model raised: header was Bearer tok-123456")
    assert err.code == "model_failed"
    assert "tok-123456" not in str(err)


# -- logs ---------------------------------------------------------------------------------


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Logging configured as the services do it, writing into a buffer."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    mlflow_logger = logging.getLogger("mlflow")
    saved_mlflow = (mlflow_logger.handlers[:], mlflow_logger.propagate, mlflow_logger.level)
    with redirect_stderr(buffer):
        configure_logging("INFO")  # binds sys.stderr (the buffer) now
    yield buffer
    root.handlers[:], level, config = saved
    root.setLevel(level)
    structlog.configure(**config)
    mlflow_logger.handlers[:], mlflow_logger.propagate, _ = saved_mlflow
    mlflow_logger.setLevel(saved_mlflow[2])


def _events(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_structlog_values_nested_values_and_exceptions_are_redacted(
    json_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2-pw")
    log = get_logger("test")
    try:
        raise ConnectionError("cannot reach http://bob:hunter2-pw@mlflow:5000/api")
    except ConnectionError:
        log.exception(
            "registry_unreachable",
            tracking_uri="http://bob:hunter2-pw@mlflow:5000",
            headers={"Authorization": "Basic Ym9iOmh1bnRlcjI=", "n": 1},
            urls=["https://h/?token=abc123", 7],
            detail=ValueError("password=hunter2-pw"),
        )
    text = json_lines.getvalue()
    assert "hunter2-pw" not in text and "Ym9iOmh1bnRlcjI=" not in text and "abc123" not in text
    [event] = _events(json_lines)
    assert event["tracking_uri"] == f"http://bob:{MASK}@mlflow:5000"
    assert event["headers"] == {"Authorization": f"Basic {MASK}", "n": 1}
    assert event["urls"] == [f"https://h/?token={MASK}", 7]
    assert event["detail"] == f"ValueError('password={MASK}')"
    assert "ConnectionError: cannot reach http://bob:***@mlflow:5000/api" in str(event["exception"])


def test_standard_library_records_and_their_exceptions_are_redacted(
    json_lines: io.StringIO,
) -> None:
    logger = logging.getLogger("modelbus.tests.stdlib")
    try:
        raise RuntimeError("GET https://h/x?access_token=zzz9 failed")
    except RuntimeError:
        logger.error("retrying %s", "https://alice:wonder@h/api", exc_info=True)
    text = json_lines.getvalue()
    assert "wonder" not in text and "zzz9" not in text
    [event] = _events(json_lines)
    assert event["event"] == f"retrying https://alice:{MASK}@h/api"
    assert f"access_token={MASK}" in str(event["exception"])


def test_mlflow_loggers_write_redacted_json_too(json_lines: io.StringIO) -> None:
    # As in the services: mlflow (which gives its loggers a plain-text handler of their
    # own) is imported first, logging is configured after.
    import mlflow  # noqa: F401

    with redirect_stderr(json_lines):
        configure_logging("INFO")
    logging.getLogger("mlflow.utils.rest_utils").warning(
        "request to https://bob:hunter22@mlflow.example.com/api failed"
    )
    [event] = _events(json_lines)
    assert event["logger"] == "mlflow.utils.rest_utils"
    assert event["event"] == f"request to https://bob:{MASK}@mlflow.example.com/api failed"


def test_the_processor_leaves_other_values_alone() -> None:
    event = {"event": "x", "n": 3, "ok": True, "none": None, "f": 1.5, "max_tokens": 7,
             "deep": {"a": {"b": {"c": 1}}}}
    assert redact_secrets(None, "info", dict(event)) == event


def test_the_processor_masks_whole_values_under_credential_names() -> None:
    event = {"event": "connect", "sasl_plain_password": b"raw-bytes", "api_key": "k-123",
             "kafka": {"sasl_plain_password": "pw-1", "bootstrap_servers": "b:9092"}}
    assert redact_secrets(None, "info", event) == {
        "event": "connect", "sasl_plain_password": MASK, "api_key": MASK,
        "kafka": {"sasl_plain_password": MASK, "bootstrap_servers": "b:9092"},
    }


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Authorization", "Basic Ym9iOmh1bnRlcjI=", f"Basic {MASK}"),
        ("authorization", "opaque", MASK),
        ("sasl_plain_password", "x", MASK),
        ("MLFLOW_TRACKING_TOKEN", "anything at all", MASK),
        ("Cookie", "session=1", MASK),
        ("tracking_uri", "http://u:pw@h", f"http://u:{MASK}@h"),
        ("tokenizer", "bert", "bert"),
        ("password", "", ""),
    ],
)
def test_fields_named_like_credentials_are_masked_whole(
    name: str, value: str, expected: str
) -> None:
    assert redact_field(name, value) == expected
