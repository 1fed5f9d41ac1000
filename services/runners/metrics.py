"""Prometheus metrics of a runner, on their own registry (so tests and several runners never clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PipelineMetrics:
    """Counters a fraud team watches: consumed, scored, alerts, dead letters, lag, end-to-end latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("fraudstream_consumed", "Messages read from the source", ["partition"], registry=r)
        self.scored = Counter("fraudstream_scored", "Valid transactions scored", registry=r)
        self.alerts = Counter("fraudstream_alerts", "Transactions flagged as alerts", registry=r)
        self.dead_letters = Counter("fraudstream_dead_letters", "Messages sent to the dead-letter sink", ["field"], registry=r)
        self.duplicates = Counter("fraudstream_duplicates", "Retries of a transaction already scored, skipped", registry=r)
        self.late = Counter("fraudstream_late", "Transactions that reached the merchant stage's merge after later ones",
                            registry=r)
        self.pending = Gauge("fraudstream_merge_pending", "Transactions the merchant stage holds back for slower card partitions",
                             registry=r)
        self.lag = Gauge("fraudstream_lag", "Messages behind the end of the partition", ["partition"], registry=r)
        self.latency = Histogram(
            "fraudstream_event_to_decision_seconds",
            "From the message's produce timestamp to its results being committed",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP (loopback unless told otherwise)."""
        start_http_server(port, addr=address, registry=self.registry)
