"""The metrics operators scrape, from the real processes: each serves its own on its
metrics port (never on the gateway's public port), they move as messages are sent and
stored, and every metric the dashboard and the alert rules use is one a process exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from stack.processes import paused
from tests.api import eventually, new_user, send, wait_persisted
from tests.events import Follower
from tests.harness.stack import RunningStack

ROOT = Path(__file__).resolve().parent.parent
OBSERVABILITY = ROOT / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "anonchat.json"
ALERTS = OBSERVABILITY / "prometheus" / "alerts.yml"
SEND_ROUTE = "/send_message"
# What every process exports beside the process_* and python_* metrics of the library.
SHARED = {"anonchat_dependency_errors_total", "anonchat_rate_limit_refusals_total"}
HTTP = {"anonchat_http_requests_total", "anonchat_http_request_duration_seconds"}
EXPECTED = {
    "gateway": SHARED | HTTP | {"anonchat_open_event_streams"},
    "user_service": SHARED | HTTP,
    "message_service": SHARED
    | HTTP
    | {
        "anonchat_messages_queued_total",
        "anonchat_queue_jobs",
        "anonchat_queue_pending_messages",
        "anonchat_queue_oldest_pending_age_seconds",
        "anonchat_queue_workers",
    },
    "worker": SHARED
    | {
        "anonchat_worker_jobs_total",
        "anonchat_worker_batch_size_messages",
        "anonchat_message_stored_latency_seconds",
    },
}
# What an anonchat metric's name ends with: its unit (a counter's is _total).
UNITS = {"seconds", "bytes", "total", "messages", "jobs", "workers", "streams"}
# Names in a PromQL expression that are functions, keywords or labels, not metrics.
PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "rate",
    "increase",
    "histogram_quantile",
    "by",
    "or",
    "and",
    "absent",
}


class Scrape:
    """One scrape of a process's metrics: family name -> its samples."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def samples(self, name: str, **labels: str) -> list[Sample]:
        """The samples called ``name`` (of any family) whose labels include ``labels``."""
        return [
            sample
            for family in self.families.values()
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of those samples (0 when there are none)."""
        return sum(sample.value for sample in self.samples(name, **labels))

    def exported(self) -> set[str]:
        """Every metric name the process exports, as PromQL names its series."""
        return {sample.name for family in self.families.values() for sample in family.samples} | {
            family.name + ("_total" if family.type == "counter" else "")
            for family in self.families.values()
        }


def scrape(port: int) -> Scrape:
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return Scrape(answer.text)


def role(process: str) -> str:
    return process.split(".")[0]


def scrape_all(stack: RunningStack) -> dict[str, Scrape]:
    return {name: scrape(port) for name, port in stack.config.metrics_ports.items()}


def total(scrapes: dict[str, Scrape], name: str, **labels: str) -> float:
    return sum(s.value(name, **labels) for s in scrapes.values())


def test_every_process_serves_its_metrics_on_a_port_of_its_own(
    running_stack: RunningStack,
) -> None:
    ports = running_stack.config.metrics_ports
    assert set(map(role, ports)) == set(EXPECTED)
    assert len(set(ports.values())) == len(ports)
    for name, port in ports.items():
        families = scrape(port).families
        missing = (
            EXPECTED[role(name)]
            - {family.name for family in families.values()}
            - {family.name + "_total" for family in families.values() if family.type == "counter"}
        )
        assert not missing, f"{name} does not export {sorted(missing)}"
        for family in families.values():
            assert family.documentation, f"{name}: {family.name} has no help text"
            # The library's creation timestamps of counters and histograms (*_created)
            # parse as families of their own.
            if family.name.startswith("anonchat_") and not family.name.endswith("_created"):
                unit = "total" if family.type == "counter" else family.name.rsplit("_", 1)[1]
                assert unit in UNITS, f"{name}: {family.name} names no unit"


def test_the_public_port_serves_no_metrics(gateway: httpx.Client) -> None:
    answer = gateway.get("/metrics")
    assert answer.status_code == 404
    assert "anonchat_" not in answer.text


def test_the_metrics_move_as_messages_are_sent_and_stored(
    running_stack: RunningStack, gateway: httpx.Client
) -> None:
    before = scrape_all(running_stack)
    alice, bob = new_user(gateway), new_user(gateway)
    sent = [send(gateway, alice, bob.id, f"counted {n}") for n in range(5)]
    assert all(answer.status_code == 202 for answer in sent)
    for answer in sent:
        wait_persisted(gateway, bob, answer.json()["id"])
    stored = "anonchat_message_stored_latency_seconds_count"

    def observed() -> dict[str, Scrape] | None:
        # A job observes its messages after its commit: a reader may see them first.
        scrapes = scrape_all(running_stack)
        return scrapes if total(scrapes, stored) >= total(before, stored) + 5 else None

    after = eventually(observed)
    grew = {
        "anonchat_messages_queued_total": {},
        "anonchat_http_requests_total": {
            "service": "gateway",
            "method": "POST",
            "route": SEND_ROUTE,
            "status": "202",
        },
        "anonchat_http_request_duration_seconds_count": {"service": "gateway", "route": SEND_ROUTE},
        "anonchat_worker_batch_size_messages_sum": {},
    }
    for name, labels in grew.items():
        assert total(after, name, **labels) >= total(before, name, **labels) + 5, name
    assert total(after, "anonchat_worker_jobs_total", outcome="finished") > total(
        before, "anonchat_worker_jobs_total", outcome="finished"
    )
    # Route templates, never the paths asked for.
    routes = {s.labels["route"] for s in after["gateway"].samples("anonchat_http_requests_total")}
    assert "/messages/{message_id}" in routes
    assert not any(re.search(r"/\d+", route) for route in routes)


def test_the_gateway_counts_the_streams_it_forwards(
    running_stack: RunningStack, gateway: httpx.Client
) -> None:
    port = running_stack.config.metrics_ports["gateway"]
    streams = "anonchat_open_event_streams"
    alice, bob = new_user(gateway), new_user(gateway)
    before = scrape(port).value(streams)
    follower = Follower(running_stack.gateway_url, bob.headers)
    follower.start()
    try:
        wait_persisted(gateway, bob, send(gateway, alice, bob.id, "streamed").json()["id"])
        follower.wait_for(1)
        assert scrape(port).value(streams) >= before + 1
    finally:
        follower.stop()
    eventually(lambda: scrape(port).value(streams) <= before)


def test_the_queue_gauges_follow_what_redis_holds(
    running_stack: RunningStack, gateway: httpx.Client
) -> None:
    port = running_stack.config.metrics_ports["message_service"]
    workers = [p for name, p in running_stack.processes.items() if name.startswith("worker")]
    alice, bob = new_user(gateway), new_user(gateway)

    def registered(s: Scrape) -> float:
        return s.value("anonchat_queue_workers", state="busy") + s.value(
            "anonchat_queue_workers", state="idle"
        )

    def all_registered() -> Scrape | None:
        s = scrape(port)
        return s if registered(s) >= len(workers) else None

    eventually(all_registered)
    with paused(workers):
        answer = send(gateway, alice, bob.id, "waits while the workers are stopped")
        assert answer.status_code == 202

        def waiting() -> Scrape | None:
            s = scrape(port)
            old = s.value("anonchat_queue_oldest_pending_age_seconds") >= 0.5
            return s if old and s.value("anonchat_queue_pending_messages") >= 1 else None

        held = eventually(waiting)
        assert held.value("anonchat_queue_jobs", state="queued") >= 1
    wait_persisted(gateway, bob, answer.json()["id"])


def promql_expressions() -> Iterator[tuple[str, str]]:
    """(where, expression) for every PromQL expression of the dashboard and the alerts."""
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"dashboard: {panel['title']}", target["expr"]
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule['alert']}", rule["expr"]


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers outside label matchers
    and durations that are not functions or keywords."""
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|\b(by|without)\s*\([^)]*\)", " ", expression)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    return words - PROMQL_WORDS


def label_values(expression: str, label: str) -> set[str]:
    return set(re.findall(rf'\b{label}="([^"]*)"', expression))


def test_every_metric_the_dashboard_and_the_alerts_use_is_exported(
    running_stack: RunningStack, gateway: httpx.Client
) -> None:
    # A send, so that every labelled series the expressions name has been written once.
    alice, bob = new_user(gateway), new_user(gateway)
    wait_persisted(gateway, bob, send(gateway, alice, bob.id, "seen").json()["id"])
    scrapes = scrape_all(running_stack)
    exported = set().union(*(s.exported() for s in scrapes.values())) | {"up"}
    routes = {
        s.labels["route"]
        for scraped in scrapes.values()
        for s in scraped.samples("anonchat_http_requests_total")
    }
    services = set(map(role, running_stack.config.metrics_ports))
    expressions = list(promql_expressions())
    assert len(expressions) >= 10
    for where, expression in expressions:
        names = metric_names(expression)
        assert names, f"{where}: no metric in {expression}"
        assert names <= exported, f"{where}: {sorted(names - exported)} are not exported"
        assert label_values(expression, "route") <= routes, where
        assert label_values(expression, "service") <= services, where


@pytest.mark.parametrize("expression", ['sum(rate(a_total{x="y"}[1m])) / max(b)', "up == 0"])
def test_metric_names_are_read_from_an_expression(expression: str) -> None:
    assert metric_names(expression) in ({"a_total", "b"}, {"up"})
