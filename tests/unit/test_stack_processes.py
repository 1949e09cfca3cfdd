"""Which processes ``modelbus up`` runs for its services and ``--workers``."""

from __future__ import annotations

from modelbus.stack.runner import (
    DEFAULT_SERVICES,
    gateway_url,
    metrics_ports,
    metrics_url,
    service_processes,
)


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


def test_metrics_ports_are_consecutive_in_start_order() -> None:
    processes = service_processes(DEFAULT_SERVICES, 2)
    assert metrics_ports(processes, 9400) == {
        "discovery": 9400, "catalog": 9401, "worker-1": 9402, "worker-2": 9403,
    }
    assert metrics_ports(processes, 0) == {}


def test_a_metrics_url_names_loopback_for_every_interface() -> None:
    assert metrics_url("127.0.0.1", 9400) == "http://127.0.0.1:9400/metrics"
    assert metrics_url("0.0.0.0", 9401) == "http://127.0.0.1:9401/metrics"
    assert metrics_url("198.51.100.7", 9402) == "http://198.51.100.7:9402/metrics"


def test_the_gateway_runs_after_the_services_with_the_next_metrics_port() -> None:
    processes = service_processes(DEFAULT_SERVICES, 1, gateway=True)
    assert processes[-1] == ("gateway", "gateway")
    assert metrics_ports(processes, 9400)["gateway"] == 9403
    assert gateway_url("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert gateway_url("127.0.0.1", 8081) == "http://127.0.0.1:8081"
