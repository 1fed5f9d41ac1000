"""Live page: the newest alerts and the alert / dead-letter counts, refreshed in place."""

from __future__ import annotations

import streamlit as st

from fraudstream.dashboard.components import alerts_table
from fraudstream.services.stores.alerts import AlertStore

EMPTY = "No alerts yet — start the pipeline with fraudstream demo"
REFRESH_SECONDS = 5
NEWEST = 50


def render(store: AlertStore) -> None:
    st.header("Live alerts")
    st.caption(f"Refreshes every {REFRESH_SECONDS} s.")
    _live(store)


@st.fragment(run_every=REFRESH_SECONDS)
def _live(store: AlertStore) -> None:
    alerts_total = store.count_alerts()
    letters = store.count_dead_letters()
    left, right = st.columns(2)
    left.metric("Alerts", f"{alerts_total:,}")
    right.metric("Dead letters", f"{letters:,}")
    if alerts_total == 0:
        st.info(EMPTY)
        return
    st.subheader(f"Newest {min(NEWEST, alerts_total)}")
    alerts_table(store.recent_alerts(NEWEST), key="live_newest")
