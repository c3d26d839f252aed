"""Prometheus metrics every anonchat process shares, and the port they are served on.

Each process serves its metrics on a port of its own (``ANONCHAT_METRICS_PORT``), never
on the port its API answers on: the gateway's public port has no ``/metrics``, and an
operator's Prometheus reaches the metrics ports on the internal network only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from prometheus_client import Counter, Histogram, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Requests that match no route share one label, so that scanners cannot add series.
UNMATCHED_ROUTE = "unmatched"

HTTP_REQUESTS = Counter(
    "anonchat_http_requests_total",
    "HTTP requests answered, by service, method, route template and status code.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "anonchat_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by service, method and route "
    "template.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RATE_LIMIT_REFUSALS = Counter(
    "anonchat_rate_limit_refusals_total",
    "Requests refused with 429 because their caller was over a rate limit, by what it limits.",
    ["limit"],
)
DEPENDENCY_ERRORS = Counter(
    "anonchat_dependency_errors_total",
    "Failed calls to Postgres or Redis (unreachable, lost, timed out), by dependency.",
    ["dependency"],
)

Dependency = Literal["postgres", "redis"]


def dependency_error(dependency: Dependency) -> None:
    """Count one failed call to ``dependency``."""
    DEPENDENCY_ERRORS.labels(dependency).inc()


def serve_metrics(port: int, host: str) -> Callable[[], None]:
    """Serve this process's metrics on ``host:port`` (from a thread); returns what stops
    it. Port 0 serves nothing."""
    if port == 0:
        return lambda: None
    server, thread = start_http_server(port, addr=host)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop


class HttpMetricsMiddleware:
    """Counts and times each HTTP request by its route template (``/users/{user_id}``,
    not the path asked for), read once routing has run. ``service`` names the process
    in every series, so that dashboards need not rely on how Prometheus names its jobs."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        # The series of each (method, route, status) seen, looked up once: finding a
        # labelled child costs twice what updating it does.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
        key = (scope["method"], route, status)
        series = self._series.get(key)
        if series is None:
            method = key[0]
            series = self._series[key] = (
                HTTP_REQUESTS.labels(self.service, method, route, str(status)),
                HTTP_LATENCY.labels(self.service, method, route),
            )
        requests, latency = series
        requests.inc()
        latency.observe(seconds)
