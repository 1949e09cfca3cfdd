"""One naming scheme for log events: every event a service logs is a snake_case identifier
(``log.info("container_stopped", model=...)``), its details in fields, never free text.

Read from the source (no service runs): every call ``<logger>.<level>("literal", ...)``
under ``services/``, where ``<level>`` is a logging method.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
LEVELS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical",
                    "msg", "fatal"})
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _event_names(source: str) -> list[tuple[int, str]]:
    """``(line, event)`` of each logging call whose first argument is a string literal; an
    f-string's event is its text with ``x`` for each placeholder (``f"{what}_unreachable"``
    is a name built of snake_case parts, ``f"{what} unreachable"`` is free text)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LEVELS
            and node.args
        ):
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.append((node.lineno, first.value))
        elif isinstance(first, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "x" for v in first.values]
            found.append((node.lineno, "".join(map(str, parts))))
    return sorted(found)


def test_the_reader_finds_logging_calls_on_any_logger() -> None:
    source = (
        'log.info("a_b", x=1)\n'
        'self._log.warning(\n    "Free text, here",\n)\n'
        'get_logger("x").bind(y=2).exception("c")\n'
        'print("not a log")\n'
        'log.info(message)\n'
        'log.error(f"failed {n}")\n'
        'log.warning(f"{what}_unreachable")\n'
    )
    assert _event_names(source) == [
        (1, "a_b"), (2, "Free text, here"), (5, "c"), (8, "failed x"), (9, "x_unreachable")
    ]


def test_every_log_event_is_a_snake_case_name() -> None:
    offenders = [
        f"{path.relative_to(SERVICES.parent)}:{line}: {event!r}"
        for path in sorted(SERVICES.rglob("*.py"))
        for line, event in _event_names(path.read_text())
        if not EVENT_NAME.match(event)
    ]
    assert not offenders, (
        "log events are snake_case names (details go in fields):\n" + "\n".join(offenders)
    )
