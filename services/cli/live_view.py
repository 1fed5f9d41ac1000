"""The live terminal view of a run: throughput, alerts, dead letters, latency and the newest alerts."""

from __future__ import annotations

from datetime import datetime, timezone

from rich.console import Group
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
            when, alert.card_id, alert.merchant_id, f"{alert.amount:,.2f}", f"{alert.score:.3f}",
            "; ".join(alert.reasons[:2]),
        )
    parts: list = [f"[bold]{title}", summary, alerts]
    if stats.lag is not None:
        parts.insert(2, f"lag: [bold]{stats.lag:,}[/] messages behind")
    if stats.dead_letter_fields:
        top = ", ".join(f"{field}: {n:,}" for field, n in stats.dead_letter_fields.most_common(5))
        parts.append(f"[yellow]dead letters by field[/]: {top}")
    return Group(*parts)
