"""Where a test lives says what it is: ``tests/unit/`` holds exactly the unit tests.

A test is an integration test when it is marked ``integration`` (``tests/conftest.py``
marks every test that uses a real-component fixture: the broker, MLflow, Docker); all
others are unit tests. Unit test files are ``tests/unit/test_<subject>.py``; integration test
files are ``tests/<area>/test_<subject>.py``, never under ``tests/unit/``. A ``*_unit.py``
name (the old scheme) is refused, so the two schemes never mix again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

UNIT_DIR = "unit"


@dataclass(frozen=True)
class CollectedTest:
    """One collected test: its file relative to ``tests/`` (posix) and what it is."""

    file: str
    integration: bool


def layout_problems(tests: Iterable[CollectedTest]) -> list[str]:
    """One line per file that breaks the layout (empty: every test is where it belongs)."""
    problems: dict[str, str] = {}
    for test in tests:
        if test.file in problems:
            continue
        in_unit = test.file.split("/", 1)[0] == UNIT_DIR
        if test.file.endswith("_unit.py"):
            problems[test.file] = (
                f"tests/{test.file}: no '_unit' suffix; unit tests are "
                f"tests/{UNIT_DIR}/test_<subject>.py"
            )
        elif in_unit and test.integration:
            problems[test.file] = (
                f"tests/{test.file}: has an integration test (a real-component fixture or the "
                f"integration marker); move it to tests/<area>/"
            )
        elif not in_unit and not test.integration:
            problems[test.file] = (
                f"tests/{test.file}: has a unit test (no real-component fixture, not marked "
                f"integration); move it to tests/{UNIT_DIR}/, or mark it integration if it "
                f"starts a real component itself"
            )
    return sorted(problems.values())
