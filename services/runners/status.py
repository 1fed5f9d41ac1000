"""Heartbeats: a runner's counters written to the alert store every few seconds, so the dashboard can show
throughput and alert rate without talking to the runner."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

from fraudstream.services.runners.stats import RunStats
from fraudstream.services.stores.alerts.base import AlertStore, RunnerStatus

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0


def runner_name(source: str) -> str:
    """A name that tells runners apart: what they read, on which host, in which process."""
    return f"{source}@{socket.gethostname()}:{os.getpid()}"


class StatusReporter:
    """Call it with the run's stats as often as you like; it writes a heartbeat at most every ``every_s``.

    A heartbeat that cannot be written is logged and skipped: monitoring never stops the pipeline.
    """

    def __init__(self, store: AlertStore, runner: str, every_s: float = HEARTBEAT_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.runner, self.every_s, self.clock = store, runner, every_s, clock
        self.started_at_ms = int(clock() * 1000)
        self._last = float("-inf")

    def __call__(self, stats: RunStats, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        c = stats.counters
        status = RunnerStatus(self.runner, int(now * 1000), self.started_at_ms, read=c["read"], scored=c["scored"],
                              alerts=c["alerts"], dead_letters=c["dead_letters"], rows_per_s=round(stats.rate(), 3),
                              lag=stats.lag, finished=stats.finished)
        try:
            self.store.write_status(status)
        except Exception as error:  # noqa: BLE001 (any store failure: the heartbeat is best effort)
            log.warning("could not write the heartbeat of %s: %s", self.runner, error)
