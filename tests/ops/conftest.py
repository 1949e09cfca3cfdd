"""The operations tests' ``modelbus up``: one per run of this package, shared by its modules
(the services' metrics and readiness, and a real Prometheus scraping them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.up_stack import Stack, running_stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``modelbus up`` with its metrics on consecutive ports and one warm echo model."""
    yield from running_stack(tmp_path_factory)
