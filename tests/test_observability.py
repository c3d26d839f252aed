"""deploy/observability, checked without starting it: the alert rules are valid and fire
as their unit tests say (promtool, from Debian's prometheus package), Prometheus's
configuration is valid, Grafana is provisioned with the dashboard from the repository,
and docs/operations.md says what to do for every alert."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS = OBSERVABILITY / "prometheus"
GRAFANA = OBSERVABILITY / "grafana"
COMPOSE = ROOT / "docker-compose.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("no promtool on PATH (Debian: apt-get install prometheus; .ci/run does)")
    return subprocess.run(
        [binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alerts() -> list[dict[str, Any]]:
    return [rule for group in load(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]]


def compose_service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = load(COMPOSE)["services"][name]
    return found


def test_the_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_as_their_unit_tests_say() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_configuration_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    tested = {
        case["alertname"]
        for test in load(PROMETHEUS / "alerts_test.yml")["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alerts()} == tested


def test_the_alerts_name_the_jobs_prometheus_scrapes() -> None:
    jobs = {job["job_name"] for job in load(PROMETHEUS / "prometheus.yml")["scrape_configs"]}
    for rule in alerts():
        for pattern in re.findall(r'job=~"([^"]*)"', rule["expr"]):
            assert set(pattern.split("|")) == jobs, rule["alert"]


def test_operations_doc_says_what_to_do_for_every_alert() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    headings = set(re.findall(r"^### (\w+)", doc, flags=re.MULTILINE))
    for rule in alerts():
        assert rule["alert"] in headings, f"docs/operations.md has no section {rule['alert']}"
        assert f'"{rule["alert"]}"' in rule["annotations"]["description"], rule["alert"]


def test_grafana_is_provisioned_with_the_dashboard_of_the_repository() -> None:
    mounts = dict(m.split(":")[:2] for m in compose_service("grafana")["volumes"] if ":" in m)
    provisioning = mounts["./deploy/observability/grafana/provisioning"]
    assert provisioning == "/etc/grafana/provisioning"
    datasources = load(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    (source,) = datasources
    assert source["url"] == "http://prometheus:9090"
    (provider,) = load(GRAFANA / "provisioning" / "dashboards" / "anonchat.yml")["providers"]
    assert mounts["./deploy/observability/grafana/dashboards"] == provider["options"]["path"]
    dashboard = json.loads((GRAFANA / "dashboards" / "anonchat.json").read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    for wanted in ("Sends accepted per second", "Send latency at the gateway", "Queue depth"):
        assert wanted in titles
    for panel in dashboard["panels"]:
        for target in [panel, *panel["targets"]]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_prometheus_reads_the_rules_of_the_repository() -> None:
    mounts = dict(m.split(":")[:2] for m in compose_service("prometheus")["volumes"])
    assert mounts["./deploy/observability/prometheus"] == "/etc/prometheus"
    command = compose_service("prometheus")["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    assert load(PROMETHEUS / "prometheus.yml")["rule_files"] == ["alerts.yml"]
