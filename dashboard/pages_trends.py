"""Trends page: alerts per hour, top cards and merchants, the score histogram, counts by category / country / hour."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import HOUR_MS, AlertQuery

SCORE_EDGES = [i / 20 for i in range(21)]  # 0.00, 0.05, ..., 1.00
GROUP_TITLES = {"merchant_category": "merchant category", "country": "country", "channel": "channel", "hour": "hour of day (UTC)"}


def render(store: AlertStore) -> None:
    st.header("Trends")
    query = AlertQuery()
    if store.count_alerts(query) == 0:
        st.info("No alerts yet — start the pipeline with fraudstream demo")
        return

    st.subheader("Alerts per hour")
    buckets = store.alerts_over_time(query, HOUR_MS)
    over_time = pd.DataFrame({"hour (UTC)": pd.to_datetime([b for b, _ in buckets], unit="ms", utc=True),
                              "alerts": [n for _, n in buckets]})
    st.line_chart(over_time, x="hour (UTC)", y="alerts", x_label="hour (UTC)", y_label="alerts per hour")

    left, right = st.columns(2)
    for column, entity in ((left, "card"), (right, "merchant")):
        by = column.radio(f"Top {entity}s by", ["count", "amount"], horizontal=True, key=f"trends_{entity}_by")
        stats = store.top_entities(entity, query, by=by, limit=10)
        frame = pd.DataFrame({entity: [s.key for s in stats], "alerts": [s.alerts for s in stats],
                              "alerted amount": [round(s.amount, 2) for s in stats]})
        value = "alerts" if by == "count" else "alerted amount"
        column.bar_chart(frame, x=entity, y=value, x_label=entity, y_label="alerts" if by == "count" else "alerted amount (currency units)",
                         horizontal=True, sort=f"-{value}")

    st.subheader("Score distribution")
    counts = store.histogram("score", query, SCORE_EDGES)
    histogram = pd.DataFrame({"score bin": [f"{lo:.2f}–{hi:.2f}" for lo, hi in zip(SCORE_EDGES, SCORE_EDGES[1:])], "alerts": counts})
    st.bar_chart(histogram, x="score bin", y="alerts", x_label="model score (bin start–end)", y_label="alerts")

    grouping = st.selectbox("Alerts by", list(GROUP_TITLES), format_func=GROUP_TITLES.get, key="trends_group")
    by_group = store.count_by(grouping, query)
    frame = pd.DataFrame({GROUP_TITLES[grouping]: list(by_group), "alerts": list(by_group.values())})
    st.bar_chart(frame, x=GROUP_TITLES[grouping], y="alerts", x_label=GROUP_TITLES[grouping], y_label="alerts")
