"""Log lines for whoever reads them: aligned text (in colour) on a terminal, JSON lines
elsewhere, as ``--log-format`` / ``MODELBUS_LOG_FORMAT`` say; secrets masked either way."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
import structlog

from modelbus_delivery.log_format import rendering, use_colours
from modelbus_delivery.logs import configure_logging, get_logger

ESC = "\x1b["


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("requested", "is_terminal", "expected"),
    [
        ("auto", True, "console"),
        ("auto", False, "json"),
        ("console", False, "console"),
        ("json", True, "json"),
        ("", True, "console"),  # anything else counts as auto
    ],
)
def test_auto_is_console_on_a_terminal_and_json_elsewhere(
    requested: str, is_terminal: bool, expected: str
) -> None:
    assert rendering(requested, is_terminal) == expected


def test_colours_only_on_a_terminal_and_never_with_no_color() -> None:
    assert use_colours(True, {}) is True
    assert use_colours(False, {}) is False
    assert use_colours(True, {"NO_COLOR": "1"}) is False
    assert use_colours(True, {"NO_COLOR": ""}) is True  # no-color.org: set and not empty


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    yield
    root.handlers[:], level, config = saved
    root.setLevel(level)
    structlog.configure(**config)


def _log_both(stream: io.StringIO, log_format: str) -> str:
    configure_logging("INFO", log_format, stream=stream)
    get_logger("stack").info("service_started", service="worker", password="hunter22")
    logging.getLogger("some.library").warning("library says %s", "hi")
    return stream.getvalue()


@pytest.mark.usefixtures("restored_logging")
def test_a_terminal_gets_readable_coloured_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    text = _log_both(Terminal(), "auto")
    lines = text.splitlines()
    assert len(lines) == 2
    assert ESC in text
    plain = [_strip_colours(line) for line in lines]
    assert "[info" in plain[0] and "service_started" in plain[0] and "[stack]" in plain[0]
    assert "service=worker" in plain[0] and "password=***" in plain[0]
    assert "hunter22" not in text
    assert "library says hi" in plain[1] and "[some.library]" in plain[1]
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)


@pytest.mark.usefixtures("restored_logging")
def test_no_color_keeps_the_readable_lines_without_colours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    text = _log_both(Terminal(), "auto")
    assert ESC not in text
    assert "service_started" in text and "password=***" in text


@pytest.mark.usefixtures("restored_logging")
def test_a_pipe_gets_json_lines() -> None:
    text = _log_both(io.StringIO(), "auto")
    ours, library = (json.loads(line) for line in text.splitlines())
    assert ours["event"] == "service_started" and ours["component"] == "stack"
    assert ours["password"] == "***" and ours["timestamp"].endswith("Z")
    assert library["event"] == "library says hi" and library["logger"] == "some.library"


@pytest.mark.usefixtures("restored_logging")
def test_the_format_asked_for_wins_over_the_stream() -> None:
    assert ESC not in _log_both(io.StringIO(), "console")  # readable, no colours off a tty
    assert "service_started" in _log_both(io.StringIO(), "console")
    [ours, _] = _log_both(Terminal(), "json").splitlines()
    assert json.loads(ours)["event"] == "service_started"


def _strip_colours(line: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", line)


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def unconfigured() -> Iterator[_Kept]:
    """structlog as a program that only imports the client SDK has it: not configured."""
    config = structlog.get_config()
    structlog.reset_defaults()
    kept = _Kept()
    ours = logging.getLogger("modelbus")
    ours.addHandler(kept)
    yield kept
    ours.removeHandler(kept)
    structlog.configure(**config)


def test_before_logging_is_configured_nothing_reaches_stdout(
    unconfigured: _Kept, capsys: pytest.CaptureFixture[str]
) -> None:
    """structlog's default would print every info line on the program's standard output;
    the standard library's logger shows warnings on stderr only, or what the program set."""
    log = get_logger("client").bind(correlation_id="c-1")
    logging.getLogger("modelbus").setLevel(logging.WARNING)
    try:
        log.info("catalog_view_ready", entries=2)
        log.warning("reply_topic_gone", topic="t", password="hunter22")
    finally:
        logging.getLogger("modelbus").setLevel(logging.NOTSET)
    assert capsys.readouterr().out == ""
    assert [(r.name, r.levelno, r.getMessage()) for r in unconfigured.records] == [
        ("modelbus.client", logging.WARNING,
         "reply_topic_gone correlation_id='c-1' topic='t' password='***'"),
    ]


@pytest.mark.usefixtures("restored_logging")
def test_a_logger_made_before_the_set_up_follows_it(unconfigured: _Kept) -> None:
    early = get_logger("worker")  # module-level loggers exist before configure_logging
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    early.bind(model="m").info("service_started")
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["event"] == "service_started"
    assert json.loads(line)["component"] == "worker" and json.loads(line)["model"] == "m"
    assert unconfigured.records == []
