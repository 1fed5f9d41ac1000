"""Without a terminal (logs, nohup, a container) a run prints a one-line status every few seconds."""

from __future__ import annotations

import io

from rich.console import Console

from fraudstream.services.cli.live_view import StatusLines, status_line
from fraudstream.services.runners.embedded import RunStats


def stats(read: int) -> RunStats:
    run = RunStats()
    run.counters.update(read=read, scored=read - 2, alerts=3, dead_letters=2)
    run.position = read
    return run


def test_status_lines_come_at_the_first_report_and_then_every_ten_seconds() -> None:
    now = [100.0]
    out = io.StringIO()
    lines = StatusLines(Console(file=out, width=300), "file:x.csv", clock=lambda: now[0])
    for step in range(25):  # 25 reports over 24 s: lines at 0, 10 and 20 s
        lines(stats(1_000 + step))
        now[0] += 1.0
    printed = out.getvalue().splitlines()
    assert len(printed) == 3
    assert printed[0].startswith("status file:x.csv: 1,000 read, 998 scored, 3 alerts (3.0 per 1,000), 2 dead letters")
    assert "1,020 read" in printed[2]


def test_status_line_names_the_lag_when_the_source_knows_it() -> None:
    run = stats(10)
    run.lag = 1_234
    assert status_line(run, "kafka:t/g").endswith("lag 1,234")
