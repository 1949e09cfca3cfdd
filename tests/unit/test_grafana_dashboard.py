"""The Grafana dashboard of ``deploy/grafana/``: a dashboard Grafana imports (unique panel
ids, a Prometheus datasource variable, no overlapping panels), the panels the issue asks
for, every expression accepted by Prometheus' parser (``promtool check rules`` over them as
recording rules) and using only metrics the services export. That they return data from a
running stack: tests/ops/test_prometheus_dashboard.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from tests.support.observability import (
    dashboard_panels,
    dashboard_queries,
    exported_metric_names,
    load_dashboard,
    metric_names,
    tool,
)

# The issue's list, by the metric each panel must show; then the gateway's (requests/s by
# status class, p50 and p99, in flight, 429s and 5xx).
REQUIRED = {
    "requests/s per model": ("modelbus_requests_total", "sum by (model) (rate("),
    "p50 per model": ("modelbus_request_duration_seconds_bucket", "histogram_quantile(0.5,"),
    "p99 per model": ("modelbus_request_duration_seconds_bucket", "histogram_quantile(0.99,"),
    "errors by code": ("modelbus_requests_total", "sum by (error_code)"),
    "lag": ("modelbus_consumer_lag", "sum by (topic)"),
    "batch sizes": ("modelbus_batch_rows_bucket", "histogram_quantile"),
    "containers": ("modelbus_containers", "sum by (state)"),
    "cold starts": ("modelbus_container_starts_total", "increase("),
    "cold start duration": ("modelbus_cold_start_seconds_bucket", "histogram_quantile"),
    "gateway 2xx/s": ("modelbus_gateway_requests_total", 'status=~"2.."'),
    "gateway 4xx/s": ("modelbus_gateway_requests_total", 'status=~"4.."'),
    "gateway 5xx/s": ("modelbus_gateway_requests_total", 'status=~"5.."'),
    "gateway p50": ("modelbus_gateway_request_seconds_bucket", "histogram_quantile(0.5,"),
    "gateway p99": ("modelbus_gateway_request_seconds_bucket", "histogram_quantile(0.99,"),
    "gateway in flight": ("modelbus_gateway_in_flight", "sum by (instance)"),
    "gateway 429s": ("modelbus_gateway_refused_total", "sum by (reason)"),
}


def test_the_dashboard_is_importable() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "modelbus-overview"
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["allValue"] == ".*"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(grid["x"] + dx, grid["y"] + dy)
                 for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
    for panel in dashboard_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]


@pytest.mark.parametrize("subject", sorted(REQUIRED))
def test_the_panels_the_issue_asks_for_are_there(subject: str) -> None:
    metric, shape = REQUIRED[subject]
    assert any(metric in q.expr and shape in q.expr for q in dashboard_queries()), subject


def test_the_dashboard_uses_only_metrics_the_services_export() -> None:
    exported = exported_metric_names()
    for query in dashboard_queries():
        used = metric_names(query.expr)
        assert used, query
        assert used <= exported, f"{query.where}: {sorted(used - exported)} not exported"


def test_prometheus_parses_every_expression_of_the_dashboard(tmp_path: Path) -> None:
    queries = dashboard_queries()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": q.expr} for i, q in enumerate(queries)
    ]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([tool("promtool"), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout
