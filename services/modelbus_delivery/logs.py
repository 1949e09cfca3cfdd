"""structlog set-up: one line per event on stderr, context variables merged in; JSON
objects, or aligned text (in colour on a terminal) as ``log_format`` says.

Every line, ours or a library's through the standard library, passes ``redact_secrets``
after exceptions are rendered and before the line is written: no credential reaches a log.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from modelbus_contract.redact import MASK, is_secret_name, redact, redact_field

from .log_format import rendering, use_colours

# How deep ``redact_secrets`` walks nested dicts and lists; deeper values become their
# redacted repr (what the JSON renderer would have printed for them anyway, minus secrets).
_MAX_DEPTH = 3
_SCALARS = (int, float, bool, type(None))
# Loggers that ``import mlflow`` configures for itself (mlflow.utils.logging_utils).
_MLFLOW_OWNED_LOGGERS = ("mlflow", "sqlalchemy.engine", "alembic", "huey")


def _scrub(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _SCALARS):
        return value
    if depth < _MAX_DEPTH:
        if isinstance(value, dict):
            return {key: _scrub_field(key, item, depth + 1) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_scrub(item, depth + 1) for item in value]
    try:
        if depth <= _MAX_DEPTH and hasattr(value, "__structlog__"):
            return _scrub(value.__structlog__(), _MAX_DEPTH + 1)
        # JSONRenderer prints any other object as its repr: print the redacted repr instead.
        return redact(repr(value))
    except Exception:  # a broken __repr__ must not cost the whole line
        return f"<unprintable {type(value).__name__}>"


def _scrub_field(key: Any, value: Any, depth: int) -> Any:
    """A value under a key: all of it masked when the key names a credential."""
    if isinstance(key, str) and not isinstance(value, _SCALARS) and is_secret_name(key):
        return redact_field(key, value) if isinstance(value, str) else MASK
    return _scrub(value, depth)


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every value of the event, nested ones included, redacted."""
    for key, value in event_dict.items():
        event_dict[key] = _scrub_field(key, value, 0)
    return event_dict


_level = logging.INFO


def debug_enabled() -> bool:
    """Whether debug events are logged: hot paths skip building them otherwise."""
    return _level <= logging.DEBUG


def _component_as_logger(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Console only: our ``component`` in the column where a library's logger name goes."""
    if "component" in event_dict and "logger" not in event_dict:
        event_dict["logger"] = event_dict.pop("component")
    return event_dict


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or stream-like object
        return False


def configure_logging(
    level: str = "INFO", log_format: str = "auto", *, stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library's loggers to ``stream`` (stderr): JSON
    lines, or aligned text for a terminal (``log_format``: auto, console or json)."""
    global _level
    out = stream or sys.stderr
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    _level = numeric
    terminal = _is_terminal(out)
    console = rendering(log_format, terminal) == "console"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        # A person at a terminal reads the local time of day; machines get UTC ISO.
        structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False) if console
        else structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[Any] = (
        [_component_as_logger,
         structlog.dev.ConsoleRenderer(colors=use_colours(terminal, os.environ))]
        if console else [structlog.processors.JSONRenderer()]
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redact_secrets,
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,
                *renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    # Importing mlflow gives these loggers a plain-text handler of their own that does not
    # propagate: their lines would bypass JSON and redaction. Take them back (the services
    # import mlflow before they configure logging).
    for owned in _MLFLOW_OWNED_LOGGERS:
        library = logging.getLogger(owned)
        library.handlers.clear()
        library.propagate = True
    # Third-party chatter (connection retries are reported by our own events).
    for noisy in ("aiokafka", "kafka", "urllib3", "mlflow", "faststream", "docker",
                  "sqlalchemy.engine", "alembic", "huey"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


_STANDARD_LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
    "error": logging.ERROR, "exception": logging.ERROR, "critical": logging.CRITICAL,
}


class _ComponentLogger:
    """structlog's logger once the process has configured structlog (a service, the CLI,
    an application with its own set-up); until then the standard library's
    ``modelbus.COMPONENT`` logger. So a program that only imports the client SDK and has
    configured nothing gets no info lines on its standard output (structlog's default):
    Python shows warnings and errors on stderr, and ``logging.basicConfig`` shows all."""

    __slots__ = ("_context", "_name", "_structlog")

    def __init__(self, name: str, context: dict[str, Any]) -> None:
        self._name = name
        self._context = context
        self._structlog: Any = None

    def bind(self, **values: Any) -> _ComponentLogger:
        return _ComponentLogger(self._name, {**self._context, **values})

    def _emit(self, method: str, event: str, values: dict[str, Any]) -> None:
        if structlog.is_configured():
            if self._structlog is None:
                self._structlog = structlog.get_logger(component=self._name, **self._context)
            getattr(self._structlog, method)(event, **values)
            return
        standard = logging.getLogger(f"modelbus.{self._name}")
        level = _STANDARD_LEVELS[method]
        if standard.isEnabledFor(level):
            exc_info = values.pop("exc_info", method == "exception")
            fields = redact_secrets(None, method, {**self._context, **values})
            text = " ".join([event, *(f"{key}={value!r}" for key, value in fields.items())])
            standard.log(level, "%s", text, exc_info=exc_info)

    def debug(self, event: str, **values: Any) -> None:
        self._emit("debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        self._emit("info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._emit("warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._emit("error", event, values)

    def exception(self, event: str, **values: Any) -> None:
        self._emit("exception", event, values)


def get_logger(name: str) -> Any:
    """The logger of a component: structlog's, carrying ``component=name``, once structlog
    is configured (``configure_logging``); the standard library's before."""
    return _ComponentLogger(name, {})
