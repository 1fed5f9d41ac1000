"""Widgets more than one page uses: the time-range picker, alert tables that open the detail page, the label form."""

from __future__ import annotations

import functools
import time
from datetime import date, datetime, timedelta, timezone

import streamlit as st

from fraudstream.dashboard.data import alerts_frame
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import LABELS, Alert, AlertQuery

DAY_MS = 86_400_000
RANGES = {"All time": None, "Last 24 hours": DAY_MS, "Last 7 days": 7 * DAY_MS, "Last 30 days": 30 * DAY_MS, "Custom dates": -1}
ALERT_PAGE = "Alert"


def newest_alert_ms(store: AlertStore) -> int | None:
    """Event time of the newest alert: ranges are anchored there, since replayed or simulated data is not 'now'."""
    newest = store.recent_alerts(1)
    return newest[0].timestamp_ms if newest else None


def time_range(store: AlertStore, key: str) -> AlertQuery:
    """A range picker; returns the AlertQuery for it ([start, end) in event time) and says what it covers."""
    choice = st.selectbox("Time range", list(RANGES), key=key)
    newest = newest_alert_ms(store)
    if newest is None or RANGES[choice] is None:
        return AlertQuery()
    if RANGES[choice] == -1:
        last_day = datetime.fromtimestamp(newest / 1000, tz=timezone.utc).date()
        picked = st.date_input("Dates (UTC)", (last_day - timedelta(days=6), last_day), key=f"{key}_dates")
        if not isinstance(picked, tuple) or len(picked) != 2:
            st.caption("Pick a first and a last day.")
            return AlertQuery()
        start, end = (_day_ms(picked[0]), _day_ms(picked[1]) + DAY_MS)
    else:
        end = newest + 1
        start = end - RANGES[choice]
    st.caption(f"{_utc(start)} – {_utc(end)} UTC (ranges end at the newest alert)")
    return AlertQuery(start_ms=start, end_ms=end)


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1000)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def open_alert(transaction_id: str) -> None:
    """Switch to the alert-detail page for ``transaction_id`` (use as a callback: it runs before the rerun)."""
    st.session_state.page = ALERT_PAGE
    st.session_state.alert_id = transaction_id


def _open_selected(key: str, ids: list[str]) -> None:
    rows = st.session_state[key].selection.rows
    if rows:
        open_alert(ids[rows[0]])


def alerts_table(alerts: list[Alert], key: str, full: bool = False) -> None:
    """A table of alerts; selecting a row opens that alert's detail page."""
    ids = [a.transaction_id for a in alerts]
    st.dataframe(alerts_frame(alerts, full=full), hide_index=True, key=key, selection_mode="single-row",
                 on_select=functools.partial(_open_selected, key, ids))


def _save_label(store: AlertStore, transaction_id: str, prefix: str) -> None:
    """Button callback: stores the label before the rerun, so the page drawn next already shows it."""
    state = st.session_state
    analyst = (state.get(f"{prefix}_analyst") or "").strip()
    if not analyst:
        state[f"{prefix}_message"] = ("error", "Enter your name before labelling.")
        return
    alert = store.set_label(transaction_id, state[f"{prefix}_label"], analyst, at_ms=int(time.time() * 1000),
                            note=state.get(f"{prefix}_note") or "")
    state[f"{prefix}_message"] = ("success", f"Labelled {alert.transaction_id} as {alert.label} ({analyst}).")
    state[f"{prefix}_note"] = ""


def show_message(prefix: str) -> None:
    """The outcome of the last label saved with this form, once."""
    kind, message = st.session_state.pop(f"{prefix}_message", (None, None))
    if kind == "success":
        st.success(message)
    elif kind == "error":
        st.error(message)


def label_form(store: AlertStore, alert: Alert, prefix: str) -> None:
    """Fraud / legitimate / unsure with the analyst's name and a note; kept with who and when."""
    st.radio("Label", LABELS, horizontal=True, key=f"{prefix}_label")
    st.text_input("Analyst", key=f"{prefix}_analyst")
    st.text_area("Note", key=f"{prefix}_note")
    st.button("Save label", key=f"{prefix}_submit", type="primary", on_click=_save_label,
              args=(store, alert.transaction_id, prefix))
