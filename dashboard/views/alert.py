"""Alert detail: the transaction, its score against the threshold, the reasons in words, the label form and the
card's recent alerts for context."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from fraudstream.dashboard.components import alerts_table, label_form, show_message
from fraudstream.dashboard.data import card_label, utc
from fraudstream.model.reasons import is_thin_history
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import Alert, AlertQuery

CARD_CONTEXT = 20


def score_chart(alert: Alert) -> alt.LayerChart:
    """The score as a bar on the 0–1 scale with the model's threshold drawn across it."""
    frame = pd.DataFrame({"what": ["score"], "value": [alert.score], "threshold": [alert.threshold]})
    axis = alt.X("value:Q", scale=alt.Scale(domain=[0, 1]), title="model score (0 = normal, 1 = most suspicious)")
    bar = alt.Chart(frame).mark_bar(color="#d62728", height=22).encode(x=axis, y=alt.Y("what:N", title=None))
    rule = alt.Chart(frame).mark_rule(color="black", strokeWidth=2).encode(x="threshold:Q")
    return (bar + rule).properties(height=70)


def details(store: AlertStore, alert: Alert) -> None:
    """Everything an analyst needs to decide on one alert."""
    st.subheader(f"{alert.transaction_id} — score {alert.score:.4f} (threshold {alert.threshold:.3f})")
    record = alert.record
    place = ", ".join(str(record[k]) for k in ("merchant_category", "channel", "country") if record.get(k))
    st.write(f"{utc(alert.timestamp_ms)} UTC · card **{card_label(alert, markdown=True)}** · merchant **{alert.merchant_id}** · "
             f"amount **{alert.amount:,.2f} {record.get('currency') or ''}**" + (f" · {place}" if place else "")
             + f" · model {alert.model_version}")
    if is_thin_history(alert.reasons):
        st.warning("Thin history: raised while this card had too little history for the model to know its usual "
                   "behaviour (a warm-up effect, e.g. a new card or a deployment started without `--warm-up`). "
                   "Weigh the score accordingly.")
    st.altair_chart(score_chart(alert))
    st.caption(f"The score is {alert.score - alert.threshold:+.3f} from the threshold; the black line is the threshold.")
    if alert.label:
        st.write(f"Current label: **{alert.label}** by {alert.labelled_by} at {utc(alert.labelled_at_ms or 0)} UTC"
                 + (f" — “{alert.label_note}”" if alert.label_note else ""))
    st.markdown("**Why it was flagged**\n" + "\n".join(f"- {reason}" for reason in alert.reasons)
                if alert.reasons else "No reasons recorded.")
    with st.expander("Transaction record"):
        st.json(record)
    history = store.label_history(alert.transaction_id)
    if history:
        st.markdown("**Label history**")
        st.dataframe([{"at (UTC)": utc(e.at_ms), "label": e.label, "analyst": e.analyst, "note": e.note} for e in history],
                     hide_index=True, key=f"history_{alert.transaction_id}")


def card_context(store: AlertStore, alert: Alert) -> None:
    """The card's other recent alerts from the store (the store keeps flagged transactions only)."""
    recent = store.search(AlertQuery(card_id=alert.card_id), sort="time", limit=CARD_CONTEXT + 1)
    others = [a for a in recent.alerts if a.transaction_id != alert.transaction_id][:CARD_CONTEXT]
    st.markdown(f"**Card {card_label(alert, markdown=True)}: {recent.total:,} alert(s) in the store**")
    if others:
        alerts_table(others, key="alert_card_context")
    else:
        st.caption("No other alerts for this card.")


def render(store: AlertStore) -> None:
    st.header("Alert detail")
    show_message("alert")
    transaction_id = st.text_input("Transaction id", key="alert_id").strip()
    if not transaction_id:
        st.info("Enter a transaction id, or pick a row in any alert table to open it here.")
        return
    alert = store.get(transaction_id)
    if alert is None:
        st.warning(f"No alert {transaction_id!r} in the store.")
        return
    details(store, alert)
    st.markdown("**Label this alert**")
    label_form(store, alert, "alert")
    card_context(store, alert)
