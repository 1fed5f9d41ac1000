"""Review queue: the unlabelled alerts, highest score first; label one fraud / legitimate / unsure with a note."""

from __future__ import annotations

import streamlit as st

from fraudstream.dashboard.components import alerts_table, label_form, show_message
from fraudstream.dashboard.data import card_label
from fraudstream.dashboard.views.alert import details
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import UNLABELLED, AlertQuery

QUEUE = 50


def render(store: AlertStore) -> None:
    st.header("Review queue")
    show_message("review")
    queue = store.search(AlertQuery(label=UNLABELLED), sort="score", limit=QUEUE)
    if queue.total == 0:
        st.info("Nothing to review: every alert has a label.")
        return
    st.caption(f"{queue.total:,} unlabelled alert(s); the {len(queue.alerts)} highest scores (pick a row to open its page):")
    alerts_table(queue.alerts, key="review_queue")
    by_id = {a.transaction_id: a for a in queue.alerts}
    if st.session_state.get("review_pick") not in by_id:  # labelled meanwhile: move on to the next one
        st.session_state.pop("review_pick", None)
    pick = st.selectbox("Alert to review", list(by_id), key="review_pick",
                        format_func=lambda tid: f"{tid} · score {by_id[tid].score:.3f} · card {card_label(by_id[tid])}")
    alert = by_id[pick]
    details(store, alert)
    label_form(store, alert, "review")
