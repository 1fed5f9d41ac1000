"""Time charts that cannot mislead: unambiguous UTC labels, an axis clipped to the data, and lines that break
at gaps instead of being drawn across empty time (two far-apart points are two points, not a trend)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
YEAR_MS = 365 * DAY_MS


def label_format(span_ms: int) -> str:
    """A d3 time format that names the day (and the year when the data spans more than one), never bare minutes.

    >>> label_format(HOUR_MS // 2), label_format(6 * HOUR_MS), label_format(30 * DAY_MS), label_format(3 * YEAR_MS)
    ('%b %d, %H:%M:%S', '%b %d, %H:%M', '%b %d, %Y', '%Y-%m-%d')
    """
    if span_ms <= 2 * HOUR_MS:
        return "%b %d, %H:%M:%S"
    if span_ms <= 3 * DAY_MS:
        return "%b %d, %H:%M"
    return "%b %d, %Y" if span_ms <= YEAR_MS else "%Y-%m-%d"


def segments(times_ms: Sequence[int], max_gap_ms: int) -> list[int]:
    """A segment number per time (sorted): a new segment starts after a gap longer than ``max_gap_ms``.

    >>> segments([0, 10, 20, 500, 510], max_gap_ms=15)
    [0, 0, 0, 1, 1]
    """
    numbers, current, previous = [], 0, None
    for t in times_ms:
        if previous is not None and t - previous > max_gap_ms:
            current += 1
        numbers.append(current)
        previous = t
    return numbers


def with_zeros(buckets: Sequence[tuple[int, int]], interval_ms: int, max_fill: int = 24) -> list[tuple[int, int]]:
    """Counts per bucket with the empty buckets of short gaps (up to ``max_fill`` buckets) filled with 0: an hour
    without alerts is a real zero; longer gaps stay gaps, where the line breaks.

    >>> with_zeros([(0, 2), (30, 1), (1_000, 5)], interval_ms=10, max_fill=3)
    [(0, 2), (10, 0), (20, 0), (30, 1), (1000, 5)]
    """
    filled: list[tuple[int, int]] = []
    for start, count in buckets:
        if filled:
            last = filled[-1][0]
            missing = (start - last) // interval_ms - 1
            if 0 < missing <= max_fill:
                filled.extend((last + k * interval_ms, 0) for k in range(1, missing + 1))
        filled.append((start, count))
    return filled


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO text in UTC, the one time form that reaches the browser's chart intact."""
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def time_axis(times_ms: pd.Series, title: str = "time (UTC)") -> alt.X:
    """An x encoding over ``time`` (the ISO texts of ``times_ms``), clipped to the data, with UTC labels that
    name the day (a domain or format given any other way is lost or read in the browser's time zone)."""
    low, high = int(times_ms.min()), int(times_ms.max())
    if high == low:
        low, high = low - HOUR_MS, high + HOUR_MS
    labels = f"utcFormat(datum.value, '{label_format(high - low)}')"
    return alt.X("time:T", title=title, scale=alt.Scale(type="utc", domain=[iso(low), iso(high)], nice=False),
                 axis=alt.Axis(labelExpr=labels, labelAngle=-30, labelOverlap=True, tickCount=8))


def line_over_time(frame: pd.DataFrame, y: str, y_title: str, max_gap_ms: int, color: str | None = None,
                   tooltip_format: str = ",.0f") -> alt.Chart:
    """Lines with points over ``frame["t"]`` (epoch ms), broken wherever one series has no point for ``max_gap_ms``."""
    frame = frame.sort_values("t").copy()
    keys = [color] if color else []
    frame["segment"] = 0
    for _, group in frame.groupby(keys) if keys else [(None, frame)]:
        frame.loc[group.index, "segment"] = segments(group["t"].tolist(), max_gap_ms)
    times = pd.to_datetime(frame["t"], unit="ms", utc=True)
    frame["time"] = times.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["when"] = times.dt.strftime("%Y-%m-%d %H:%M UTC")
    encoding = {
        "x": time_axis(frame["t"]),
        "y": alt.Y(f"{y}:Q", title=y_title),
        "detail": alt.Detail("segment:N"),
        "tooltip": [alt.Tooltip("when:N", title="time"), alt.Tooltip(f"{y}:Q", format=tooltip_format)]
        + ([alt.Tooltip(f"{color}:N")] if color else []),
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", legend=alt.Legend(orient="bottom", title=None, labelLimit=400))
    return alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(size=18)).encode(**encoding).properties(height=300)
