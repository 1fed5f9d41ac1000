"""Heartbeats: a runner's counters written to the alert store every few seconds, so the dashboard can show
throughput and alert rate without talking to the runner."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import PurePath

from fraudstream.services.runners.stats import RunStats
from fraudstream.services.stores.alerts.base import AlertStore, RunnerStatus

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0


def runner_name(source: str, role: str = "") -> str:
    """What an analyst reads for a runner, unique per process: what it reads, on which host, in which process.

    ``source`` is the source's own id (``generator:cards=…``, ``file:PATH``, ``kafka:TOPIC/GROUP``); ``role`` says
    who started it (``demo``).

    >>> import os, socket
    >>> runner_name("file:data/in/tx.csv") == f"file tx.csv on {socket.gethostname()} (pid {os.getpid()})"
    True
    >>> runner_name("generator:cards=2000,days=30,seed=7", role="demo").startswith("demo generator on ")
    True
    """
    kind, _, detail = source.partition(":")
    if kind == "file" and detail:
        what = f"file {PurePath(detail).name}"
    elif kind == "kafka" and detail:
        what = f"kafka {detail}"
    else:
        what = kind or "runner"
    return f"{role + ' ' if role else ''}{what} on {socket.gethostname()} (pid {os.getpid()})"


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
