"""The fraudstream dashboard (Streamlit entry point): pick a page in the sidebar.

Run it with ``fraudstream dashboard``; it reads only through the alert-store interface, at the
settings' ``store.url`` (``$FRAUDSTREAM_STORE``; default var/alerts.db, as for ``fraudstream run``), and shows
the model at ``paths.model`` (``$FRAUDSTREAM_MODEL``).
Links can name a page and an alert: ``?page=Alert&id=<transaction id>``.
"""

from __future__ import annotations

import streamlit as st

from fraudstream.dashboard import data
from fraudstream.dashboard.views import PAGES

st.set_page_config(page_title="fraudstream", page_icon="🛡️", layout="wide")

if "page" not in st.session_state:  # first run of this session: honour a link's ?page=...&id=...
    st.session_state.page = st.query_params.get("page") if st.query_params.get("page") in PAGES else "Live"
    if st.query_params.get("id"):
        st.session_state.alert_id = st.query_params["id"]

with st.sidebar:
    st.title("fraudstream")
    page = st.radio("Page", list(PAGES), key="page")
    st.caption(f"Alert store: `{data.store_url()}`")
    model = data.model_summary()
    if model is None:
        st.caption(f"Model: no model at `{data.model_dir()}`")
    else:
        st.caption(f"Model: {model['version']} · threshold {model['threshold']:.3f} · {model['features']} features")

st.query_params.page = page  # the address bar always names the page, so it can be shared or reloaded
if page == "Alert" and st.session_state.get("alert_id"):
    st.query_params.id = st.session_state.alert_id
else:
    st.query_params.pop("id", None)

try:
    store = data.get_store()
except Exception as error:  # an unreachable store must not look like an empty one
    st.error(f"Cannot open the alert store {data.store_url()!r}: {error}")
    st.stop()

PAGES[page](store)
