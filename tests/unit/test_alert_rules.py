"""The alert rules of ``deploy/prometheus/``: ``promtool test rules`` runs their unit tests
(series shaped like the services' metrics, firing and quiet cases), ``promtool check``
accepts the rules and the configuration, and every metric they use is one the services
export."""

from __future__ import annotations

import subprocess

import yaml
from tests.support.observability import (
    ALERTS,
    ALERTS_TEST,
    KUBERNETES_JOB,
    PROMETHEUS_CONFIG,
    REPO,
    exported_metric_names,
    load_rules,
    metric_names,
    rule_queries,
    tool,
)

# The issue's list: lag growing, DLQ rate, error ratio per model, readiness down, slow cold
# starts, a worker that stopped consuming; for the HTTP gateway: down, sustained 5xx, sustained
# 429s, a high p99, sustained 503s.
REQUIRED_ALERTS = {
    "ModelbusConsumerLagGrowing",
    "ModelbusDeadLetters",
    "ModelbusModelErrorRatio",
    "ModelbusNotReady",
    "ModelbusColdStartSlow",
    "ModelbusWorkerNotConsuming",
    "ModelbusWorkerNotPolling",
    "ModelbusGatewayDown",
    "ModelbusGatewayErrorRatio",
    "ModelbusGatewayOverloaded",
    "ModelbusGatewayLatencyHigh",
    "ModelbusGatewayModelsUnavailable",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True,
                          timeout=120, check=False, cwd=ALERTS.parent)


def test_promtool_runs_the_rules_unit_tests() -> None:
    result = _promtool("test", "rules", ALERTS_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_rules_and_the_configuration() -> None:
    rules = _promtool("check", "rules", ALERTS.name)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = _promtool("check", "config", PROMETHEUS_CONFIG.name)
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_alert_the_issue_asks_for_is_there_with_a_severity_and_a_summary() -> None:
    rules = [rule for group in load_rules()["groups"] for rule in group["rules"]]
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"].startswith("modelbus: "), rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_every_alert_is_exercised_by_the_rule_tests() -> None:
    cases = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    fired = {
        check["alertname"] for case in cases for check in case["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert fired == {rule["alert"] for group in load_rules()["groups"] for rule in group["rules"]}


def test_the_rules_use_only_metrics_the_services_export() -> None:
    exported = exported_metric_names()
    for query in rule_queries():
        used = metric_names(query.expr)
        assert used, query
        assert used <= exported, f"{query.where}: {sorted(used - exported)} not exported"


def test_the_monitoring_page_lists_every_alert_and_every_exported_metric() -> None:
    page = (REPO / "docs" / "operations" / "monitoring.md").read_text()
    alerts = {rule["alert"] for group in load_rules()["groups"] for rule in group["rules"]}
    assert {a for a in alerts if f"| `{a}` |" not in page} == set()
    exported = exported_metric_names() - {"up"}
    histograms = {n.removesuffix("_bucket") for n in exported if n.endswith("_bucket")}
    documented = {n for n in exported if f"| `{n}` |" in page} | {
        h + suffix for h in histograms if f"| `{h}` |" in page
        for suffix in ("_bucket", "_count", "_sum")
    }
    assert exported - documented == set()


def test_the_kubernetes_scrape_job_follows_the_pods_annotations() -> None:
    # Debian's promtool has no Kubernetes service discovery: its shape is checked here, and
    # tests/unit/test_kubernetes_manifests.py checks that the pods carry these annotations.
    (job,) = yaml.safe_load(KUBERNETES_JOB.read_text())
    assert job["job_name"].startswith("modelbus")
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    sources = {tuple(rule["source_labels"]) for rule in job["relabel_configs"]}
    for label in ("__meta_kubernetes_pod_annotation_prometheus_io_scrape",
                  "__meta_kubernetes_pod_label_app_kubernetes_io_part_of"):
        assert (label,) in sources
    assert ("__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port") in sources
