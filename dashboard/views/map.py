"""Map: where alerts happened, and for one card its home against the merchants it was flagged at.

Drawn with Altair on a plain longitude/latitude grid (a graticule Vega computes itself), so the page needs no
map tiles and works offline.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from fraudstream.dashboard.components import time_range
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import Alert, AlertQuery

MAX_POINTS = 1_000
EMPTY = "No alerts yet — start the pipeline with fraudstream demo"


def _coordinate(record: dict, name: str) -> float | None:
    value = record.get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def locations(alerts: list[Alert]) -> pd.DataFrame:
    """One row per alert with both coordinates of the merchant (and the card's home when known)."""
    rows = []
    for a in alerts:
        lat, lon = _coordinate(a.record, "merchant_lat"), _coordinate(a.record, "merchant_lon")
        if lat is None or lon is None:
            continue
        rows.append({"transaction": a.transaction_id, "card": a.card_id, "merchant": a.merchant_id, "amount": a.amount,
                     "score": a.score, "merchant_lat": lat, "merchant_lon": lon,
                     "home_lat": _coordinate(a.record, "card_lat"), "home_lon": _coordinate(a.record, "card_lon")})
    columns = ["transaction", "card", "merchant", "amount", "score", "merchant_lat", "merchant_lon", "home_lat", "home_lon"]
    return pd.DataFrame(rows, columns=columns)


def _grid(frame: pd.DataFrame) -> alt.Chart:
    """Latitude/longitude lines around the data, every 5° or 10° depending on the span."""
    lats = pd.concat([frame["merchant_lat"], frame["home_lat"].dropna()])
    lons = pd.concat([frame["merchant_lon"], frame["home_lon"].dropna()])
    south, north = max(-90.0, float(lats.min()) - 2), min(90.0, float(lats.max()) + 2)
    west, east = max(-180.0, float(lons.min()) - 2), min(180.0, float(lons.max()) + 2)
    step = 5 if max(north - south, east - west) <= 60 else 10
    graticule = alt.graticule(extent=[[west, south], [east, north]], step=[step, step])
    return alt.Chart(graticule).mark_geoshape(filled=False, stroke="#cccccc", strokeWidth=0.5)


def alert_map(frame: pd.DataFrame) -> alt.LayerChart:
    """Alerts at their merchant's location, coloured by score."""
    points = alt.Chart(frame).mark_circle(opacity=0.7).encode(
        longitude="merchant_lon:Q", latitude="merchant_lat:Q",
        color=alt.Color("score:Q", scale=alt.Scale(scheme="orangered"), title="score"),
        size=alt.Size("amount:Q", title="amount", scale=alt.Scale(range=[15, 300])),
        tooltip=["transaction", "card", "merchant", alt.Tooltip("amount:Q", format=",.2f"), alt.Tooltip("score:Q", format=".3f")],
    )
    return (_grid(frame) + points).project(type="equirectangular").properties(height=520)


def card_map(frame: pd.DataFrame) -> alt.LayerChart:
    """One card: its home (black square), lines to each merchant it was flagged at, merchants coloured by score."""
    homes = frame.dropna(subset=["home_lat", "home_lon"])
    lines = alt.Chart(homes).mark_rule(color="#888888").encode(
        longitude="home_lon:Q", latitude="home_lat:Q", longitude2="merchant_lon:Q", latitude2="merchant_lat:Q")
    home = alt.Chart(homes.head(1)).mark_square(size=160, color="black").encode(
        longitude="home_lon:Q", latitude="home_lat:Q", tooltip=[alt.Tooltip("card", title="home of card")])
    merchants = alt.Chart(frame).mark_circle(size=120).encode(
        longitude="merchant_lon:Q", latitude="merchant_lat:Q",
        color=alt.Color("score:Q", scale=alt.Scale(scheme="orangered"), title="score"),
        tooltip=["transaction", "merchant", alt.Tooltip("amount:Q", format=",.2f"), alt.Tooltip("score:Q", format=".3f")],
    )
    return (_grid(frame) + lines + home + merchants).project(type="equirectangular").properties(height=520)


def render(store: AlertStore) -> None:
    st.header("Map")
    query = time_range(store, "map_range")
    card = st.text_input("Card (optional): its home and the merchants it was flagged at", key="map_card").strip()
    if card:
        query = AlertQuery(card_id=card, start_ms=query.start_ms, end_ms=query.end_ms)
    page = store.search(query, sort="score", limit=MAX_POINTS)
    if page.total == 0:
        st.info(f"No alerts for card {card!r} in this range." if card else EMPTY)
        return
    frame = locations(page.alerts)
    shown = f"the {len(page.alerts):,} highest-scoring of {page.total:,}" if page.total > len(page.alerts) else f"all {page.total:,}"
    missing = len(page.alerts) - len(frame)
    st.caption(f"Showing {shown} alert(s)" + (f"; {missing:,} without merchant coordinates are left out" if missing else "")
               + ". Longitude/latitude grid; no map tiles, so it works offline.")
    if frame.empty:
        st.info("None of these alerts carries merchant coordinates.")
        return
    st.altair_chart(card_map(frame) if card else alert_map(frame))
