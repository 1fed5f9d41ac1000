"""Runner heartbeats: written at most every few seconds, never fatal, and read back by the dashboard."""

from __future__ import annotations

import pytest

from fraudstream.services.runners.stats import RunStats
from fraudstream.services.runners.status import StatusReporter, runner_name
from fraudstream.services.stores.alerts.base import RunnerStatus
from fraudstream.services.stores.alerts.memory import MemoryAlertStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0

    def __call__(self) -> float:
        return self.now


def stats(read: int, alerts: int) -> RunStats:
    run = RunStats()
    run.counters.update(read=read, scored=read - 1, alerts=alerts, dead_letters=1)
    run.position = read
    return run


def test_heartbeats_are_throttled_and_carry_the_counters() -> None:
    store, clock = MemoryAlertStore(), Clock()
    report = StatusReporter(store, "gen@h:1", every_s=5.0, clock=clock)
    report(stats(100, 2))
    clock.now += 1
    report(stats(200, 3))  # too soon: skipped
    clock.now += 4
    report(stats(300, 4))
    clock.now += 1
    report(stats(301, 4), force=True)  # the final one always goes
    beats = store.runner_statuses()
    assert [(b.read, b.scored, b.alerts, b.dead_letters) for b in beats] == [(100, 99, 2, 1), (300, 299, 4, 1), (301, 300, 4, 1)]
    assert {b.started_at_ms for b in beats} == {1_767_225_600_000} and beats[1].at_ms == 1_767_225_605_000


def test_a_store_that_refuses_heartbeats_does_not_stop_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryAlertStore):
        def write_status(self, status: RunnerStatus) -> None:
            raise ConnectionError("store down")

    StatusReporter(Broken(), "gen@h:1")(stats(1, 0))
    assert "store down" in caplog.text


def test_runner_names_are_readable_and_tell_processes_apart() -> None:
    import os
    import socket

    where = f"on {socket.gethostname()} (pid {os.getpid()})"
    assert runner_name("generator:cards=2000,days=30,seed=7,start=2026-01-01", role="demo") == f"demo generator {where}"
    assert runner_name("file:/data/in/tx-2026.csv.gz") == f"file tx-2026.csv.gz {where}"
    assert runner_name("kafka:transactions/fraudstream") == f"kafka transactions/fraudstream {where}"


def test_dashboard_alert_rate_is_per_interval_and_restarts_are_not_intervals() -> None:
    from fraudstream.dashboard.views.live import latest_by_runner, state_of
    from fraudstream.dashboard.views.trends import alert_rate_frame

    def beat(runner: str, at: int, scored: int, alerts: int, started: int = 0) -> RunnerStatus:
        return RunnerStatus(runner, at, started, scored, scored, alerts, 0, 10.0)

    beats = [beat("a", 0, 0, 0), beat("a", 5_000, 1_000, 10), beat("b", 6_000, 500, 1), beat("a", 10_000, 3_000, 12),
             beat("a", 20_000, 100, 5, started=15_000)]  # "a" restarted: its counters began again
    frame = alert_rate_frame(beats)  # a run's first heartbeat counts from its start (zero counters)
    assert list(frame["runner"]) == ["a", "b", "a", "a"]
    assert list(frame["alerts per 1,000"]) == [10.0, 2.0, 1.0, 50.0]
    latest = latest_by_runner(beats)
    assert [(s.runner, s.at_ms) for s in latest] == [("a", 20_000), ("b", 6_000)]
    assert state_of(latest[0], now_ms=25_000) == "running" and state_of(latest[1], now_ms=60_000) == "silent"
