"""Time charts: unambiguous labels, an axis clipped to the data, and no line drawn across empty years."""

from __future__ import annotations

import doctest
import importlib

import pandas as pd
import pytest

from fraudstream.dashboard.charts import DAY_MS, HOUR_MS, line_over_time
from fraudstream.dashboard.views.trends import over_time_frame

JAN_2026 = 1_767_225_600_000


def spec(chart) -> dict:
    return chart.to_dict()


def test_a_1970_alert_and_2026_alerts_are_separate_pieces_not_a_56_year_line() -> None:
    buckets = [(0, 3), (JAN_2026, 5), (JAN_2026 + DAY_MS, 7), (JAN_2026 + 3 * DAY_MS, 2)]
    frame = over_time_frame(buckets, DAY_MS)
    assert frame["alerts"].tolist() == [3, 5, 7, 0, 2]  # one empty day between is a real zero
    chart = spec(line_over_time(frame, "alerts", "alerts per day", max_gap_ms=DAY_MS))
    rows = next(iter(chart["datasets"].values()))
    assert [r["segment"] for r in rows] == [0, 1, 1, 1, 1]  # the line breaks at the 56-year gap
    x = chart["encoding"]["x"]
    assert x["scale"]["domain"] == ["1970-01-01T00:00:00Z", "2026-01-04T00:00:00Z"]  # clipped to the data
    assert x["scale"]["nice"] is False and x["axis"]["labelExpr"] == "utcFormat(datum.value, '%Y-%m-%d')"
    assert chart["encoding"]["detail"]["field"] == "segment"


def test_the_last_24_hours_are_labelled_with_day_and_time_not_bare_minutes() -> None:
    frame = pd.DataFrame({"t": [JAN_2026 + h * HOUR_MS for h in range(24)], "alerts": list(range(24))})
    x = spec(line_over_time(frame, "alerts", "alerts per hour", max_gap_ms=HOUR_MS))["encoding"]["x"]
    assert x["axis"]["labelExpr"] == "utcFormat(datum.value, '%b %d, %H:%M')" and x["scale"]["type"] == "utc"


def test_alert_rate_lines_break_per_runner_when_heartbeats_stop() -> None:
    frame = pd.DataFrame({"t": [0, 5_000, 10_000, 900_000, 5_000], "runner": ["a", "a", "a", "a", "b"],
                          "alerts per 1,000": [1.0, 2.0, 3.0, 4.0, 5.0]})
    rows = next(iter(spec(line_over_time(frame, "alerts per 1,000", "rate", max_gap_ms=60_000,
                                         color="runner"))["datasets"].values()))
    pieces = {(r["runner"], r["t"]): r["segment"] for r in rows}
    assert pieces[("a", 0)] == pieces[("a", 10_000)] != pieces[("a", 900_000)]


@pytest.mark.parametrize("name", ["fraudstream.dashboard.charts", "fraudstream.dashboard.outlines",
                                  "fraudstream.dashboard.views.map"])
def test_docstring_examples(name: str) -> None:
    """The dashboard's examples (tests/unit/test_doctests.py walks model and services only: app.py is a script)."""
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
