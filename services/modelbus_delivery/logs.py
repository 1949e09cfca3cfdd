"""structlog set-up: one JSON object per line on stderr, context variables merged in."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure_logging(level: str = "INFO") -> None:
    """Route structlog and the standard library's loggers to JSON lines on stderr."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    # Third-party chatter (connection retries are reported by our own events).
    for noisy in ("aiokafka", "kafka", "urllib3", "mlflow", "faststream", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def framework_logger(service: str) -> logging.Logger:
    """The stdlib logger handed to FastStream: JSON through the root handler, warnings up."""
    logger = logging.getLogger(f"modelbus.{service}.faststream")
    logger.setLevel(logging.WARNING)
    return logger


def get_logger(name: str) -> Any:
    """A structlog logger carrying the component name."""
    return structlog.get_logger(component=name)
