"""The live terminal view of a run: throughput, alerts, dead letters, latency and the newest alerts; and, where
no terminal can show it (logs, nohup, a container), a one-line status every few seconds instead."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from rich.console import Console, Group
from rich.table import Table

from fraudstream.services.runners.stats import RunStats


def render(stats: RunStats, title: str) -> Group:
    """A Rich renderable of ``stats``; cheap enough to redraw four times a second."""
    c = stats.counters
    p50, p99 = stats.latency_ms(0.5), stats.latency_ms(0.99)
    summary = Table.grid(padding=(0, 3))
    for _ in range(6):
        summary.add_column(justify="right")
    summary.add_row("[bold]read", "[bold]rows/s", "[bold]alerts", "[bold]per 1,000", "[bold]dead letters", "[bold]latency p50 / p99")
    per_1000 = c["alerts"] / c["scored"] * 1000 if c["scored"] else 0.0
    latency = f"{p50:.1f} / {p99:.1f} ms" if p50 is not None and p99 is not None else "–"
    summary.add_row(
        f"{c['read']:,}", f"{stats.rate():,.0f}", f"[red]{c['alerts']:,}", f"{per_1000:.1f}",
        f"[yellow]{c['dead_letters']:,}", latency,
    )
    alerts = Table(title="newest alerts", expand=True, title_justify="left")
    for column in ("event time", "card", "merchant", "amount", "score", "why"):
        alerts.add_column(column, overflow="fold", ratio=3 if column == "why" else 1)
    for alert in reversed(stats.recent_alerts):
        when = datetime.fromtimestamp(alert.timestamp_ms / 1000, tz=timezone.utc).strftime("%m-%d %H:%M:%S")
        alerts.add_row(
            when, alert.record.get("card_display") or alert.card_id, alert.merchant_id,  # a card number only masked f"{alert.amount:,.2f}", f"{alert.score:.3f}",
            "; ".join(alert.reasons[:2]),
        )
    parts: list = [f"[bold]{title}", summary, alerts]
    if stats.lag is not None:
        parts.insert(2, f"lag: [bold]{stats.lag:,}[/] messages behind")
    if stats.dead_letter_fields:
        top = ", ".join(f"{field}: {n:,}" for field, n in stats.dead_letter_fields.most_common(5))
        parts.append(f"[yellow]dead letters by field[/]: {top}")
    return Group(*parts)


STATUS_SECONDS = 10.0


def status_line(stats: RunStats, source: str) -> str:
    """One plain line of the run's counters, for logs: what the live view shows, without the drawing."""
    c = stats.counters
    per_1000 = c["alerts"] / c["scored"] * 1000 if c["scored"] else 0.0
    p99 = stats.latency_ms(0.99)
    return (f"status {source}: {c['read']:,} read, {c['scored']:,} scored, {c['alerts']:,} alerts ({per_1000:.1f} per 1,000), "
            f"{c['dead_letters']:,} dead letters; {stats.rate():,.0f} rows/s"
            + (f", p99 latency {p99:.1f} ms" if p99 is not None else "")
            + (f", lag {stats.lag:,}" if stats.lag is not None else ""))


class StatusLines:
    """Prints :func:`status_line` at the first call and then at most every ``every_s`` seconds (call it often)."""

    def __init__(self, console: Console, source: str, every_s: float = STATUS_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.source, self.every_s, self.clock = console, source, every_s, clock
        self._last = float("-inf")

    def __call__(self, stats: RunStats) -> None:
        now = self.clock()
        if now - self._last >= self.every_s:
            self._last = now
            self.console.print(status_line(stats, self.source), soft_wrap=True, highlight=False, markup=False)
