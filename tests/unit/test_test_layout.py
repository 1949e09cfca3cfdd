"""The test layout check (tests/support/layout.py): unit tests in tests/unit/, integration
tests elsewhere, no ``_unit`` suffix."""

from __future__ import annotations

from tests.support.layout import CollectedTest, layout_problems


def test_unit_tests_in_unit_and_integration_tests_in_areas_pass() -> None:
    assert layout_problems([
        CollectedTest("unit/test_tags.py", integration=False),
        CollectedTest("delivery/test_runtime.py", integration=True),
        CollectedTest("e2e/test_cli.py", integration=True),
    ]) == []


def test_each_misplaced_file_is_named_once_with_what_to_do() -> None:
    assert layout_problems([
        CollectedTest("unit/test_a.py", integration=True),
        CollectedTest("unit/test_a.py", integration=True),
        CollectedTest("worker/test_b.py", integration=False),
        CollectedTest("worker/test_b.py", integration=True),
        CollectedTest("containers/test_c_unit.py", integration=False),
        CollectedTest("unit/test_d_unit.py", integration=False),
    ]) == [
        "tests/containers/test_c_unit.py: no '_unit' suffix; unit tests are "
        "tests/unit/test_<subject>.py",
        "tests/unit/test_a.py: has an integration test (a real-component fixture or the "
        "integration marker); move it to tests/<area>/",
        "tests/unit/test_d_unit.py: no '_unit' suffix; unit tests are "
        "tests/unit/test_<subject>.py",
        "tests/worker/test_b.py: has a unit test (no real-component fixture, not marked "
        "integration); move it to tests/unit/, or mark it integration if it starts a real "
        "component itself",
    ]
