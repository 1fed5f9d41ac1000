"""Trends: alerts over time, score and amount distributions, and alerts by category, country, channel and hour."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from fraudstream.dashboard.charts import line_over_time, with_zeros
from fraudstream.dashboard.components import DAY_MS, time_range
from fraudstream.model.reasons import THIN_HISTORY
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import HOUR_MS, AlertQuery, RunnerStatus

SCORE_EDGES = [i / 20 for i in range(21)]  # 0.00, 0.05, ..., 1.00
AMOUNT_EDGES = [0, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 1e9]
GROUP_TITLES = {"merchant_category": "merchant category", "country": "country", "channel": "channel", "hour": "hour of day (UTC)"}
RATE_WINDOW_MS = 24 * 3_600_000
RATE_GAP_MS = 60_000  # heartbeats come every 5 s: a minute without one is a stopped runner, not a straight line
EMPTY = "No alerts yet — start the pipeline with fraudstream demo"


def over_time(store: AlertStore, query: AlertQuery) -> tuple[int, list[tuple[int, int]]]:
    """(interval, buckets): hourly for up to a week, daily beyond, so a chart has a few hundred points at most."""
    if query.start_ms is not None and query.end_ms is not None:
        interval = HOUR_MS if query.end_ms - query.start_ms <= 7 * DAY_MS else DAY_MS
        return interval, store.alerts_over_time(query, interval)
    days = store.alerts_over_time(query, DAY_MS)
    if days and days[-1][0] - days[0][0] + DAY_MS > 7 * DAY_MS:
        return DAY_MS, days
    return HOUR_MS, store.alerts_over_time(query, HOUR_MS)


def alert_rate_frame(statuses: list[RunnerStatus]) -> pd.DataFrame:
    """Alerts per 1,000 scored between consecutive heartbeats of each runner (wall-clock time); a run's first
    heartbeat counts from the run's start, since a runner's counters start at zero."""
    previous: dict[str, RunnerStatus] = {}
    rows = []
    for status in statuses:
        before = previous.get(status.runner)
        previous[status.runner] = status
        if before is None or status.started_at_ms != before.started_at_ms:
            scored, alerts = status.scored, status.alerts
        else:
            scored, alerts = status.scored - before.scored, status.alerts - before.alerts
        if scored > 0:
            rows.append({"t": status.at_ms, "runner": status.runner, "alerts per 1,000": alerts * 1000 / scored})
    return pd.DataFrame(rows, columns=["t", "runner", "alerts per 1,000"])


def over_time_frame(buckets: list[tuple[int, int]], interval_ms: int) -> pd.DataFrame:
    """Alerts per bucket (``t`` = bucket start, epoch ms), short runs of empty buckets as zeros."""
    filled = with_zeros(buckets, interval_ms)
    return pd.DataFrame({"t": [b for b, _ in filled], "alerts": [n for _, n in filled]})


def histogram_frame(store: AlertStore, field: str, query: AlertQuery, edges: list[float]) -> pd.DataFrame:
    counts = store.histogram(field, query, edges)
    fmt = "{:.2f}" if field == "score" else "{:,.0f}"
    labels = [f"{fmt.format(lo)}–{fmt.format(hi) if hi < 1e9 else '+'}" for lo, hi in zip(edges, edges[1:])]
    return pd.DataFrame({"bin": pd.Categorical(labels, categories=labels, ordered=True), "alerts": counts})


def render(store: AlertStore) -> None:
    st.header("Trends")
    query = time_range(store, "trends_range")
    total = store.count_alerts(query)
    if total == 0:
        st.info(EMPTY)
        return
    interval, buckets = over_time(store, query)
    per = "hour" if interval == HOUR_MS else "day"
    st.subheader(f"Alerts per {per} ({total:,} in range)")
    st.altair_chart(line_over_time(over_time_frame(buckets, interval), "alerts", f"alerts per {per}",
                                   max_gap_ms=interval), use_container_width=True)
    thin = store.search(AlertQuery(text=THIN_HISTORY, start_ms=query.start_ms, end_ms=query.end_ms), limit=1).total
    if thin:
        st.caption(f"{thin:,} of these alerts were raised while the card had too little history (\"thin history\": "
                   "a warm-up effect; start a new deployment with `fraudstream run --warm-up HISTORY`).")

    rates = alert_rate_frame(store.runner_statuses(since_ms=int(time.time() * 1000) - RATE_WINDOW_MS))
    st.subheader("Alert rate, last 24 hours (wall clock)")
    if rates.empty:
        st.caption("No pipeline has scored anything in the last 24 hours: the alert rate needs the count of scored "
                   "transactions, which runners report every few seconds.")
    else:
        st.altair_chart(line_over_time(rates, "alerts per 1,000", "alerts per 1,000 scored",
                                       max_gap_ms=RATE_GAP_MS, color="runner", tooltip_format=".1f"),
                        use_container_width=True)

    left, right = st.columns(2)
    left.subheader("Score distribution")
    left.bar_chart(histogram_frame(store, "score", query, SCORE_EDGES), x="bin", y="alerts",
                   x_label="model score (bin)", y_label="alerts")
    right.subheader("Amount distribution")
    right.bar_chart(histogram_frame(store, "amount", query, AMOUNT_EDGES), x="bin", y="alerts",
                    x_label="amount (currency units, bin)", y_label="alerts")

    field = st.radio("Alerts by", list(GROUP_TITLES), format_func=GROUP_TITLES.get, horizontal=True, key="trends_group")
    title = GROUP_TITLES[field]
    by_group = store.count_by(field, query)
    frame = pd.DataFrame({title: list(by_group), "alerts": list(by_group.values())})
    st.bar_chart(frame, x=title, y="alerts", x_label=title, y_label="alerts", sort=False if field == "hour" else "-alerts")
