"""High risk: the cards and merchants with the most alerts or the most alerted money, and the highest-scoring
alerts nobody has reviewed yet."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fraudstream.dashboard.components import alerts_table, time_range
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import UNLABELLED, AlertQuery

TOP = 10
OPEN_ALERTS = 20
EMPTY = "No alerts yet — start the pipeline with fraudstream demo"


def entity_frame(store: AlertStore, entity: str, query: AlertQuery, by: str) -> pd.DataFrame:
    """Top cards or merchants as a table: key, alerts, alerted amount."""
    stats = store.top_entities(entity, query, by=by, limit=TOP)
    return pd.DataFrame({entity: [s.key for s in stats], "alerts": [s.alerts for s in stats],
                         "alerted amount": [round(s.amount, 2) for s in stats]})


def render(store: AlertStore) -> None:
    st.header("High risk")
    query = time_range(store, "risk_range")
    if store.count_alerts(query) == 0:
        st.info(EMPTY)
        return
    by = st.radio("Rank by", ["count", "amount"], horizontal=True, key="risk_by",
                  format_func={"count": "number of alerts", "amount": "alerted amount"}.get)
    value = "alerts" if by == "count" else "alerted amount"
    unit = "alerts" if by == "count" else "alerted amount (currency units)"
    for column, entity in zip(st.columns(2), ("card", "merchant")):
        frame = entity_frame(store, entity, query, by)
        column.subheader(f"Top {entity}s")
        column.bar_chart(frame, x=entity, y=value, x_label=entity, y_label=unit, horizontal=True, sort=f"-{value}")
        column.dataframe(frame, hide_index=True, key=f"risk_{entity}_table")
    open_query = AlertQuery(start_ms=query.start_ms, end_ms=query.end_ms, label=UNLABELLED)
    page = store.search(open_query, sort="score", limit=OPEN_ALERTS)
    st.subheader("Highest-scoring open alerts")
    if page.total == 0:
        st.info("Every alert in this range has been reviewed.")
        return
    st.caption(f"{page.total:,} open alert(s) in this range; the top {len(page.alerts)} by score (pick a row to open it).")
    alerts_table(page.alerts, key="risk_open")
