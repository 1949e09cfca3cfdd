"""The alert rules and the Grafana dashboard of ``deploy/``, read as the tests need them:
their PromQL expressions (the dashboard's with Grafana's variables given values Prometheus
accepts), the metric names the services export, and the Prometheus tools of Debian's
``prometheus`` package (``deploy/setup.sh`` installs it)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
KUBERNETES_JOB = PROMETHEUS_DIR / "kubernetes-pods-job.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "modelbus-dashboard.json"

# What Grafana puts in place of its variables, for Prometheus: every model, and a rate
# window that holds several scrapes of the tests' Prometheus (it scrapes every second).
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "${model}": ".*",
    "$model": ".*",
}
_METRIC = re.compile(r"\b(modelbus_[a-z0-9_]+|up)\b(?!\s*\()")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
             "gauge": ("",), "unknown": ("",)}


@dataclass(frozen=True)
class Query:
    """One expression: where it comes from (alert name, or panel title and refId) and it."""

    where: str
    expr: str


def tool(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``; the test fails (never skips) without."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: deploy/setup.sh installs Debian's prometheus "
                    "package", pytrace=False)
    return path


def load_rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return rules


def rule_queries() -> list[Query]:
    return [
        Query(f"alert {rule['alert']}", rule["expr"].strip())
        for group in load_rules()["groups"] for rule in group["rules"]
    ]


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel but rows (also those inside a collapsed row)."""
    panels: list[dict[str, Any]] = []
    for panel in load_dashboard()["panels"]:
        if panel["type"] == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def for_prometheus(expr: str) -> str:
    """``expr`` with Grafana's variables replaced (longest names first)."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"a Grafana variable the tests do not know in: {expr}"
    return expr


def dashboard_queries() -> list[Query]:
    return [
        Query(f"panel {panel['title']!r} {target['refId']}", for_prometheus(target["expr"]))
        for panel in dashboard_panels() for target in panel["targets"]
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (every metric of modelbus starts ``modelbus_``)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(_METRIC.findall(without_strings))


def exported_metric_names() -> set[str]:
    """Every series name the services' registries can expose (``up`` is Prometheus')."""
    from prometheus_client import CollectorRegistry

    from modelbus.stack.broker_watch import BrokerWatchMetrics
    from modelbus.stack.broker_watch_policy import BrokerLimits
    from modelbus_catalog.metrics import CatalogMetrics
    from modelbus_delivery.ops_http import Readiness, ReadinessCollector
    from modelbus_discovery.metrics import DiscoveryMetrics
    from modelbus_gateway.metrics import GatewayMetrics
    from modelbus_worker.metrics import WorkerMetrics

    ready = CollectorRegistry()
    ready.register(ReadinessCollector(Readiness({"kafka": lambda: True})))
    registries = [
        WorkerMetrics().registry, CatalogMetrics().registry, DiscoveryMetrics().registry,
        GatewayMetrics().registry, BrokerWatchMetrics(BrokerLimits(1.0, 1.0, 1)).registry,
        ready,
    ]
    names = {"up"}
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names
