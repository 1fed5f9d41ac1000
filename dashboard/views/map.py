"""Map: where alerts happened, counted per location, and for one card its home against the merchants it was
flagged at.

Drawn with Altair on longitude/latitude axes (plate carrée) over country and US-state outlines shipped in the
package, so the page needs no map tiles and works offline. Alerts at the same place are one mark sized and
coloured by their count: many alerts at one merchant must not look like one alert.
"""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st

from fraudstream.dashboard.components import time_range
from fraudstream.dashboard.outlines import Box, outline_frame
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import Alert, AlertQuery

MAX_POINTS = 5_000
EMPTY = "No alerts yet — start the pipeline with fraudstream demo"
PLACE_DECIMALS = 3  # alerts within about 100 m count as one location
MIN_SPAN_DEG = 8.0  # never zoom in so far that no outline is left to read the place by
HEIGHT = 520
MIN_HEIGHT, MIN_WIDTH, MAX_WIDTH = 320, 420, 900
LON_LABEL = "datum.value == 0 ? '0°' : (datum.value < 0 ? -datum.value + '°W' : datum.value + '°E')"
LAT_LABEL = "datum.value == 0 ? '0°' : (datum.value < 0 ? -datum.value + '°S' : datum.value + '°N')"


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


def by_place(frame: pd.DataFrame) -> pd.DataFrame:
    """Alerts grouped by merchant location: count, cards, merchants, highest score and total amount per place."""
    places = frame.assign(lat=frame["merchant_lat"].round(PLACE_DECIMALS), lon=frame["merchant_lon"].round(PLACE_DECIMALS))
    grouped = places.groupby(["lat", "lon"], as_index=False).agg(
        alerts=("transaction", "size"), cards=("card", "nunique"), merchants=("merchant", lambda m: ", ".join(sorted(set(m))[:3])),
        merchant_count=("merchant", "nunique"), top_score=("score", "max"), amount=("amount", "sum"))
    return grouped.sort_values("alerts", ascending=False, kind="stable").reset_index(drop=True)


def view_box(lats: pd.Series, lons: pd.Series) -> Box:
    """The data's extent with a margin, at least :data:`MIN_SPAN_DEG` wide and tall, within the globe."""
    south, north, west, east = float(lats.min()), float(lats.max()), float(lons.min()), float(lons.max())
    pad_lat = max((north - south) * 0.08, (MIN_SPAN_DEG - (north - south)) / 2, 1.0)
    pad_lon = max((east - west) * 0.08, (MIN_SPAN_DEG - (east - west)) / 2, 1.0)
    return Box(max(-180.0, west - pad_lon), max(-90.0, south - pad_lat), min(180.0, east + pad_lon), min(90.0, north + pad_lat))


def fit(view: Box) -> tuple[Box, int, int]:
    """``view`` widened in one direction so that a degree of longitude keeps its true length against one of
    latitude at the middle of the view (shapes are not squashed), with the chart's width and height in pixels.

    >>> box, width, height = fit(Box(-130.0, 33.0, 0.0, 44.0))  # a wide strip: latitude widens, never squashed
    >>> (width, height), round(box.north - box.south) > 11
    ((900, 320), True)
    """
    middle = max(math.cos(math.radians((view.south + view.north) / 2)), 0.2)
    lon_span, lat_span = (view.east - view.west) * middle, view.north - view.south
    if lon_span / lat_span >= MAX_WIDTH / HEIGHT:  # wide: full width, as tall as the data needs (at least MIN_HEIGHT)
        width, height = MAX_WIDTH, max(MIN_HEIGHT, int(MAX_WIDTH * lat_span / lon_span))
        grow = (lon_span * height / width - lat_span) / 2
        view = Box(view.west, max(-90.0, view.south - grow), view.east, min(90.0, view.north + grow))
    else:  # tall: full height, as wide as the data needs (at least MIN_WIDTH)
        height, width = HEIGHT, max(MIN_WIDTH, int(HEIGHT * lon_span / lat_span))
        grow = (lat_span * width / height - lon_span) / 2 / middle
        view = Box(max(-180.0, view.west - grow), view.south, min(180.0, view.east + grow), view.north)
    return view, width, height


def _axes(view: Box) -> tuple[alt.X, alt.Y]:
    x = alt.X("lon:Q", title="longitude", scale=alt.Scale(domain=[view.west, view.east], nice=False, zero=False),
              axis=alt.Axis(labelExpr=LON_LABEL, grid=True, gridColor="#eeeeee"))
    y = alt.Y("lat:Q", title="latitude", scale=alt.Scale(domain=[view.south, view.north], nice=False, zero=False),
              axis=alt.Axis(labelExpr=LAT_LABEL, grid=True, gridColor="#eeeeee"))
    return x, y


def _outlines(view: Box) -> alt.Chart:
    """Country borders and coasts (darker) and US state borders (lighter), clipped to the view."""
    x, y = _axes(view)
    return alt.Chart(outline_frame(view)).mark_line(clip=True, strokeWidth=0.8).encode(
        x=x, y=y, detail="piece:N", order="order:Q",
        color=alt.Color("layer:N", scale=alt.Scale(domain=["country", "state"], range=["#8c8c8c", "#cfcfcf"]), legend=None))


def _places(places: pd.DataFrame, view: Box) -> alt.Chart:
    x, y = _axes(view)
    most = int(places["alerts"].max())
    return alt.Chart(places).mark_circle(opacity=0.85, stroke="#444444", strokeWidth=0.6, clip=True).encode(
        x=x, y=y,
        size=alt.Size("alerts:Q", title="alerts here", scale=alt.Scale(type="sqrt", domain=[1, max(most, 2)], range=[40, 1_600])),
        color=alt.Color("alerts:Q", title="alerts here", scale=alt.Scale(scheme="orangered", domain=[1, max(most, 2)])),
        order=alt.Order("alerts:Q", sort="ascending"),  # the busiest places on top
        tooltip=[alt.Tooltip("alerts:Q", title="alerts"), alt.Tooltip("cards:Q", title="cards"),
                 alt.Tooltip("merchants:N", title="merchant(s)"), alt.Tooltip("top_score:Q", title="highest score", format=".3f"),
                 alt.Tooltip("amount:Q", title="total amount", format=",.2f"),
                 alt.Tooltip("lat:Q", format=".3f"), alt.Tooltip("lon:Q", format=".3f")],
    )


def alert_map(frame: pd.DataFrame) -> alt.LayerChart:
    """Alerts per merchant location over the outlines, sized and coloured by how many there are."""
    places = by_place(frame)
    view, width, height = fit(view_box(places["lat"], places["lon"]))
    return (_outlines(view) + _places(places, view)).properties(height=height, width=width)


def card_map(frame: pd.DataFrame) -> alt.LayerChart:
    """One card: its home (black square), lines to each place it was flagged at, places sized by alert count."""
    places = by_place(frame)
    homes = frame.dropna(subset=["home_lat", "home_lon"])
    view, width, height = fit(view_box(pd.concat([places["lat"], homes["home_lat"]]),
                                       pd.concat([places["lon"], homes["home_lon"]])))
    x, y = _axes(view)
    layers = [_outlines(view)]
    if not homes.empty:
        home = homes.iloc[0]
        links = places.assign(home_lat=home["home_lat"], home_lon=home["home_lon"])
        layers.append(alt.Chart(links).mark_rule(color="#555555", strokeDash=[4, 3], clip=True).encode(
            x=x, y=y, x2="home_lon:Q", y2="home_lat:Q"))
        spot = pd.DataFrame({"lat": [home["home_lat"]], "lon": [home["home_lon"]], "card": [home["card"]]})
        layers.append(alt.Chart(spot).mark_square(size=160, color="black").encode(
            x=x, y=y, tooltip=[alt.Tooltip("card:N", title="home of card")]))
    layers.append(_places(places, view))
    return alt.layer(*layers).properties(height=height, width=width)


def caption(shown: int, total: int, places: int, missing: int) -> str:
    """What the map shows, in numbers an analyst can check against the marks.

    >>> caption(992, 992, 20, 0)
    '992 alerts at 20 locations.'
    >>> caption(5_000, 7_250, 61, 3)
    'The 5,000 highest-scoring of 7,250 alerts: 4,997 alerts at 61 locations; 3 without merchant coordinates are left out.'
    """
    located = shown - missing
    where = f"{located:,} alert{'s' if located != 1 else ''} at {places:,} location{'s' if places != 1 else ''}"
    text = f"The {shown:,} highest-scoring of {total:,} alerts: {where}" if total > shown else where[0].upper() + where[1:]
    return text + (f"; {missing:,} without merchant coordinates are left out." if missing else ".")


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
    if frame.empty:
        st.info("None of these alerts carries merchant coordinates.")
        return
    places = len(by_place(frame))
    st.caption(caption(len(page.alerts), page.total, places, len(page.alerts) - len(frame))
               + " A mark is one merchant location, sized and coloured by its alerts; outlines: countries (Natural "
               "Earth) and US states (US Census), shipped with fraudstream, so the map works offline.")
    st.altair_chart(card_map(frame) if card else alert_map(frame))
