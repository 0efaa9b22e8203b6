"""The Grafana dashboard and the suggested alerts query only what PrometheusMetrics exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from resilient.instrumentation.prometheus import PrometheusMetrics

from ._scenario import run_scenario

ROOT = Path(__file__).resolve().parent.parent.parent
DASHBOARD = ROOT / "examples" / "grafana-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
METRIC = re.compile(r"\bresilient_[a-z_]+\b")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHERS = re.compile(r"\{([^}]*)\}")
LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def exposed() -> dict[str, set[str]]:
    """Every sample name the exporter exposes after the scenario, with its label names."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)  # the defaults: latency panels included
    try:
        kept = run_scenario()
        text = generate_latest(registry).decode()
    finally:
        metrics.close()
    del kept
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def dashboard_queries() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in data["panels"] for t in panel.get("targets", ())]
    queries += [v["query"] for v in data["templating"]["list"] if v.get("type") == "query"]
    return queries


def alert_queries() -> list[str]:
    text = OPERATIONS.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert blocks, "the alerting rules are in a yaml block of docs/operations.md"
    return blocks


def check(queries: list[str], metrics: dict[str, set[str]]) -> None:
    assert queries
    for query in queries:
        used = set(METRIC.findall(query))
        assert used, query
        unknown = used - set(metrics)
        assert not unknown, f"{query!r} names metrics the exporter does not expose: {unknown}"
        labels = set().union(*(metrics[name] for name in used))
        grouped = {
            label.strip()
            for group in GROUPING.findall(query)
            for label in group.split(",")
            if label.strip()
        }
        matched = {label for matcher in MATCHERS.findall(query) for label in LABEL.findall(matcher)}
        unknown_labels = (grouped | matched) - labels
        assert not unknown_labels, f"{query!r} uses labels the metrics lack: {unknown_labels}"


def test_the_dashboard_queries_only_exposed_metrics_and_labels() -> None:
    check(dashboard_queries(), exposed())


def test_the_suggested_alerts_query_only_exposed_metrics_and_labels() -> None:
    metrics = exposed()
    rules = alert_queries()
    expressions = re.findall(r"expr: \|?\n?((?:.|\n)*?)(?=\n\s+(?:for|labels):)", rules[0])
    assert len(expressions) == 4
    check(expressions, metrics)


def test_the_check_catches_a_wrong_name() -> None:
    metrics = exposed()
    for query, problem in [
        ("rate(resilient_call_total[5m])", "does not expose"),
        ("sum by (host) (rate(resilient_calls_total[5m]))", "lack"),
        ('resilient_circuit_state{breaker="x"}', "lack"),
    ]:
        with pytest.raises(AssertionError, match=problem):
            check([query], metrics)
