"""Review page: the unlabelled alerts, highest score first; label one fraud / legitimate / unsure with a note."""

from __future__ import annotations

import time

import streamlit as st

from fraudstream.dashboard.data import alerts_frame, utc
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import LABELS, UNLABELLED, Alert, AlertQuery

QUEUE = 50


def _label(store: AlertStore, transaction_id: str) -> None:
    """Button callback: runs before the rerun, so the queue drawn next no longer holds the alert."""
    state = st.session_state
    analyst = (state.get("review_analyst") or "").strip()
    if not analyst:
        state.review_message = ("error", "Enter your name before labelling.")
        return
    label = state.get("review_label")
    alert = store.set_label(transaction_id, label, analyst, at_ms=int(time.time() * 1000), note=state.get("review_note") or "")
    state.review_message = ("success", f"Labelled {alert.transaction_id} as {alert.label} ({analyst}).")
    state.review_note = ""
    state.pop("review_pick", None)


def _details(store: AlertStore, alert: Alert) -> None:
    st.subheader(f"{alert.transaction_id} — score {alert.score:.4f} (threshold {alert.threshold:.3f})")
    st.write(f"{utc(alert.timestamp_ms)} UTC · card **{alert.card_id}** · merchant **{alert.merchant_id}** · "
             f"amount **{alert.amount:,.2f}** · model {alert.model_version}")
    if alert.label:
        st.write(f"Current label: **{alert.label}** by {alert.labelled_by} at {utc(alert.labelled_at_ms or 0)} UTC")
    st.markdown("**Why it was flagged**\n" + "\n".join(f"- {reason}" for reason in alert.reasons) if alert.reasons else "No reasons recorded.")
    with st.expander("Transaction record"):
        st.json(alert.record)
    history = store.label_history(alert.transaction_id)
    if history:
        st.markdown("**Label history**")
        st.dataframe([{"at (UTC)": utc(e.at_ms), "label": e.label, "analyst": e.analyst, "note": e.note} for e in history],
                     hide_index=True)


def render(store: AlertStore) -> None:
    st.header("Review queue")
    kind, message = st.session_state.pop("review_message", (None, None))
    if kind == "success":
        st.success(message)
    elif kind == "error":
        st.error(message)
    lookup = st.text_input("Open an alert by transaction id (optional, e.g. to relabel)", key="review_lookup").strip()
    if lookup:
        alert = store.get(lookup)
        if alert is None:
            st.warning(f"No alert {lookup!r}.")
            return
    else:
        queue = store.search(AlertQuery(label=UNLABELLED), sort="score", limit=QUEUE)
        if queue.total == 0:
            st.info("Nothing to review: every alert has a label.")
            return
        st.caption(f"{queue.total:,} unlabelled alert(s); the {len(queue.alerts)} highest scores:")
        st.dataframe(alerts_frame(queue.alerts), hide_index=True)
        by_id = {a.transaction_id: a for a in queue.alerts}
        pick = st.selectbox("Alert to review", list(by_id), key="review_pick",
                            format_func=lambda tid: f"{tid} · score {by_id[tid].score:.3f} · card {by_id[tid].card_id}")
        alert = by_id[pick]
    _details(store, alert)
    st.radio("Label", LABELS, horizontal=True, key="review_label")
    st.text_input("Analyst", key="review_analyst")
    st.text_area("Note", key="review_note")
    st.button("Save label", key="review_submit", type="primary", on_click=_label, args=(store, alert.transaction_id))
