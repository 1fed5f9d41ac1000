"""The fraudstream dashboard (Streamlit entry point): pick a page in the sidebar.

Run it with ``fraudstream dashboard``; it reads only through the alert-store interface, at
``$FRAUDSTREAM_STORE`` (default var/demo/alerts.db), and shows the model at ``$FRAUDSTREAM_MODEL``.
"""

from __future__ import annotations

import streamlit as st

from fraudstream.dashboard import data, pages_live, pages_review, pages_search, pages_trends

PAGES = {"Live": pages_live.render, "Search": pages_search.render, "Review": pages_review.render, "Trends": pages_trends.render}

st.set_page_config(page_title="fraudstream", page_icon="🛡️", layout="wide")

with st.sidebar:
    st.title("fraudstream")
    page = st.radio("Page", list(PAGES), key="page")
    st.caption(f"Alert store: `{data.store_url()}`")
    model = data.model_summary()
    if model is None:
        st.caption(f"Model: no model at `{data.model_dir()}`")
    else:
        st.caption(f"Model: {model['version']} · threshold {model['threshold']:.3f} · {model['features']} features")

try:
    store = data.get_store()
except Exception as error:  # an unreachable store must not look like an empty one
    st.error(f"Cannot open the alert store {data.store_url()!r}: {error}")
    st.stop()

PAGES[page](store)
