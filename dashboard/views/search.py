"""Search page: filter alerts, page through them with the store's cursor, download every match as CSV."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fraudstream.dashboard.components import alerts_table, time_range
from fraudstream.dashboard.data import alerts_frame
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import LABELS, SORTS, UNLABELLED, AlertQuery

ANY = "any"
PAGE_SIZE = 25
EXPORT_BATCH = 5_000
EXPORT_CAP = 200_000  # rows in one CSV; narrow the filters for more


def _query(store: AlertStore) -> AlertQuery:
    """The filters as an AlertQuery (blank fields are no filter)."""
    when = time_range(store, "search_range")
    c1, c2, c3 = st.columns(3)
    card = c1.text_input("Card", key="search_card").strip() or None
    merchant = c2.text_input("Merchant", key="search_merchant").strip() or None
    text = c3.text_input("Reason contains (all words)", key="search_text").strip() or None
    c4, c5, c6, c7 = st.columns(4)
    min_score = c4.number_input("Min score", 0.0, 1.0, value=None, step=0.05, key="search_min_score")
    max_score = c5.number_input("Max score", 0.0, 1.0, value=None, step=0.05, key="search_max_score")
    min_amount = c6.number_input("Min amount", 0.0, value=None, step=10.0, key="search_min_amount")
    max_amount = c7.number_input("Max amount", 0.0, value=None, step=10.0, key="search_max_amount")
    label = st.selectbox("Label", [ANY, UNLABELLED, *LABELS], key="search_label")
    return AlertQuery(card_id=card, merchant_id=merchant, min_score=min_score, max_score=max_score,
                      min_amount=min_amount, max_amount=max_amount, label=None if label == ANY else label, text=text,
                      start_ms=when.start_ms, end_ms=when.end_ms)


def export_csv(store: AlertStore, query: AlertQuery, sort: str, cap: int = EXPORT_CAP) -> bytes:
    """Every alert matching ``query`` (up to ``cap``) as CSV, fetched page by page with the store's cursor."""
    frames, cursor, fetched = [], None, 0
    while fetched < cap:
        page = store.search(query, sort=sort, limit=min(EXPORT_BATCH, cap - fetched), cursor=cursor)
        frames.append(alerts_frame(page.alerts, full=True))
        fetched += len(page.alerts)
        cursor = page.cursor
        if cursor is None or not page.alerts:
            break
    return pd.concat(frames).to_csv(index=False).encode()


def _next_page() -> None:
    st.session_state.search_cursors.append(st.session_state.search_next)


def _previous_page() -> None:
    if len(st.session_state.search_cursors) > 1:
        st.session_state.search_cursors.pop()


def render(store: AlertStore) -> None:
    st.header("Search alerts")
    query = _query(store)
    sort = st.selectbox("Sort by (highest / newest first)", SORTS, key="search_sort")
    signature = (query, sort)
    if st.session_state.get("search_signature") != signature:  # new filters: back to page 1
        st.session_state.search_signature = signature
        st.session_state.search_cursors = [None]
    cursors = st.session_state.search_cursors
    try:
        page = store.search(query, sort=sort, limit=PAGE_SIZE, cursor=cursors[-1])
    except ValueError as error:
        st.error(str(error))
        return
    st.session_state.search_next = page.cursor
    number = len(cursors)
    first = (number - 1) * PAGE_SIZE + 1
    if page.total == 0:
        st.info("No alerts match these filters.")
        return
    st.caption(f"{page.total:,} matching alert(s); page {number}, alerts {first}–{first + len(page.alerts) - 1}.")
    alerts_table(page.alerts, key="search_results", full=True)
    b1, b2, b3 = st.columns(3)
    b1.button("Previous page", key="search_prev", on_click=_previous_page, disabled=number == 1)
    b2.button("Next page", key="search_next_button", on_click=_next_page, disabled=page.cursor is None)
    capped = f" (first {EXPORT_CAP:,})" if page.total > EXPORT_CAP else ""
    b3.download_button(f"Download all {page.total:,} as CSV{capped}", lambda: export_csv(store, query, sort),
                       file_name="alerts.csv", mime="text/csv", key="search_csv")
