"""Which processes ``modelbus up`` runs for its services and ``--workers``."""

from __future__ import annotations

from modelbus.stack.runner import DEFAULT_SERVICES, service_processes


def test_one_worker_keeps_the_service_name() -> None:
    assert service_processes(DEFAULT_SERVICES, 1) == [
        ("discovery", "discovery"), ("catalog", "catalog"), ("worker", "worker"),
    ]


def test_several_workers_are_numbered_processes_of_the_worker_service() -> None:
    assert service_processes(("catalog", "worker"), 3) == [
        ("catalog", "catalog"),
        ("worker", "worker-1"), ("worker", "worker-2"), ("worker", "worker-3"),
    ]


def test_workers_without_the_worker_service_add_nothing() -> None:
    assert service_processes(("discovery",), 4) == [("discovery", "discovery")]
