"""The API's Prometheus metrics, in a registry of the app's own (several apps in one process never clash).

Requests by route template and status, a latency histogram per route, decisions, retries answered
again, invalid transactions, and errors of the state store (each one a degraded answer) and of the
alert store. With several uvicorn workers each worker serves its own figures.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UNMATCHED = "unmatched"  # requests that found no route (their paths are not labels: unbounded)


class ApiMetrics:
    """Every metric of one app; ``render()`` is the ``/metrics`` body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("fraudstream_api_requests", "HTTP requests by route and status.",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("fraudstream_api_request_seconds", "Time to answer a request, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.decisions = Counter("fraudstream_api_decisions", "Transactions scored, by decision (alert or pass).",
                                 ["decision"], registry=r)
        self.retries = Counter("fraudstream_api_retries", "Retried transactions answered with their first answer.",
                               registry=r)
        self.invalid = Counter("fraudstream_api_invalid_transactions", "Transactions refused (dead letters), by field.",
                               ["field"], registry=r)
        self.state_errors = Counter("fraudstream_api_state_store_errors",
                                    "State-store failures; each request affected was answered from the transaction alone.",
                                    registry=r)
        self.alert_store_errors = Counter("fraudstream_api_alert_store_errors",
                                          "Alert-store writes that failed (kept and retried with the next write).",
                                          registry=r)
        self.pending_alerts = Gauge("fraudstream_api_pending_alerts", "Alerts waiting for the alert store to come back.",
                                    registry=r)
        self.model = Gauge("fraudstream_api_model_info", "The model bundle loaded (1 when loaded).", ["version"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (no body buffering): counts every HTTP request and times it, by route template."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or UNMATCHED
            self.metrics.requests.labels(name, scope["method"], str(status[0])).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - start)
