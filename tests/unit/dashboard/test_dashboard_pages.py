"""The Streamlit dashboard, driven headless with streamlit.testing's AppTest over a SQLite alert store."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from support import HOUR, T0
from typer.testing import CliRunner

import fraudstream.dashboard
from fraudstream.dashboard.views import search as pages_search
from fraudstream.services.cli import app as cli_app
from fraudstream.services.stores.alerts import open_store
from fraudstream.services.stores.alerts.base import Alert, AlertQuery
from fraudstream.services.stores.dead_letters import DeadLetter

cli_dashboard = importlib.import_module("fraudstream.services.cli.dashboard")  # the package re-exports the function
APP = str(Path(fraudstream.dashboard.__file__).with_name("app.py"))
EMPTY = "No alerts yet — start the pipeline with fraudstream demo"


CATEGORIES = {1: "grocery", 2: "electronics", 3: "electronics", 4: "travel", 5: "electronics", 6: "grocery"}


def alert(n: int, hours: int, card: str, merchant: str, amount: float, score: float, reason: str) -> Alert:
    record = {"transaction_id": f"t{n:05d}", "merchant_category": CATEGORIES.get(n, "other"), "country": "US",
              "channel": "online", "currency": "USD"}
    if n != 4:  # one alert without coordinates: the map must leave it out and say so
        record.update(card_lat=40.7, card_lon=-74.0, merchant_lat=40.0 + n, merchant_lon=-80.0 - n)
    return Alert(f"t{n:05d}", T0 + hours * HOUR, card, merchant, amount, score, 0.55, (reason, "second reason"), "v1", record)


ALERTS = [
    alert(1, 0, "c1", "m1", 120.0, 0.61, "far from home"),
    alert(2, 1, "c2", "m2", 15.5, 0.93, "card-testing pattern"),
    alert(3, 2, "c1", "m3", 980.0, 0.77, "amount is 8.3× this card's average"),
    alert(4, 3, "c3", "m1", 42.0, 0.58, "new merchant"),
    alert(5, 4, "c1", "m2", 7.25, 0.85, "card-testing pattern"),
    alert(6, 5, "c2", "m3", 300.0, 0.66, "night-time spend"),
]
NEWEST = "t00006"
TOP_SCORE = "t00002"


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "alerts.db"
    monkeypatch.setenv("FRAUDSTREAM_STORE", str(path))
    monkeypatch.setenv("FRAUDSTREAM_MODEL", str(tmp_path / "no-model"))
    st.cache_resource.clear()
    yield path
    st.cache_resource.clear()


@pytest.fixture
def filled(store_path: Path) -> Path:
    store = open_store(store_path)
    store.write(ALERTS, [DeadLetter("file:x.csv", "7", "amount", "must be greater than 0, got -3.0", "t7,...,-3")])
    store.close()
    return store_path


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, at.exception
    if page != "Live":
        at.radio(key="page").set_value(page).run()
        assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def table_ids(at: AppTest, index: int = 0) -> list[str]:
    return list(at.dataframe[index].value["transaction"])


def test_empty_store_shows_the_empty_state(store_path: Path) -> None:
    at = run_page("Live")
    assert [i.value for i in at.info] == [EMPTY]
    assert metric(at, "Alerts") == "0"
    assert len(at.dataframe) == 0
    assert any("no model" in c.value for c in at.sidebar.caption)


def test_live_shows_counts_and_newest_alert_first(filled: Path) -> None:
    at = run_page("Live")
    assert metric(at, "Alerts") == "6"
    assert metric(at, "Dead letters") == "1"
    assert not at.info
    frame = at.dataframe[0].value
    assert frame["transaction"].iloc[0] == NEWEST
    assert list(frame.columns) == ["transaction", "time (UTC)", "card", "merchant", "amount", "score", "history", "why"]
    assert frame["why"].iloc[0] == "night-time spend"


def test_alerts_raised_on_thin_history_are_flagged_in_tables_and_on_the_alert_page(filled: Path) -> None:
    import dataclasses

    thin = "thin history: first transaction seen for this card, its usual behaviour is not known yet"
    store = open_store(filled)
    store.write([dataclasses.replace(alert(7, 6, "c7", "m1", 64.0, 0.7, "far from home"),
                                     reasons=("far from home", thin))])
    store.close()
    frame = run_page("Live").dataframe[0].value
    assert frame.set_index("transaction")["history"].to_dict() == {"t00007": "thin", **{a.transaction_id: "" for a in ALERTS}}
    at = open_link(page="Alert", id="t00007")
    assert any("Thin history" in w.value for w in at.warning)
    assert not open_link(page="Alert", id="t00003").warning
    assert any(c.value.startswith("1 of these alerts were raised while the card had too little history")
               for c in run_page("Trends").caption)


def test_search_by_card_returns_exactly_that_cards_alerts(filled: Path) -> None:
    at = run_page("Search")
    assert len(table_ids(at)) == 6
    at.text_input(key="search_card").input("c1").run()
    assert not at.exception
    assert table_ids(at) == ["t00005", "t00003", "t00001"]  # newest first
    at.number_input(key="search_min_score").set_value(0.7).run()
    assert table_ids(at) == ["t00005", "t00003"]
    assert at.get("download_button")  # the CSV export is offered


def test_search_pages_with_the_cursor(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages_search, "PAGE_SIZE", 4)
    at = run_page("Search")
    assert table_ids(at) == ["t00006", "t00005", "t00004", "t00003"]
    at.button(key="search_next_button").click().run()
    assert not at.exception
    assert table_ids(at) == ["t00002", "t00001"]
    assert at.button(key="search_next_button").disabled
    at.button(key="search_prev").click().run()
    assert table_ids(at) == ["t00006", "t00005", "t00004", "t00003"]


def test_review_labels_an_alert_and_it_leaves_the_queue(filled: Path) -> None:
    at = run_page("Review")
    assert table_ids(at)[0] == TOP_SCORE  # highest score first
    assert at.selectbox(key="review_pick").value == TOP_SCORE
    at.radio(key="review_label").set_value("fraud")
    at.text_input(key="review_analyst").input("ana")
    at.text_area(key="review_note").input("confirmed by phone")
    at.button(key="review_submit").click().run()
    assert not at.exception, at.exception
    store = open_store(filled)
    try:
        labelled = store.get(TOP_SCORE)
        assert (labelled.label, labelled.labelled_by, labelled.label_note) == ("fraud", "ana", "confirmed by phone")
        assert [(e.label, e.analyst) for e in store.label_history(TOP_SCORE)] == [("fraud", "ana")]
    finally:
        store.close()
    assert TOP_SCORE not in table_ids(at)
    assert len(table_ids(at)) == 5
    assert any(TOP_SCORE in s.value for s in at.success)


def test_review_needs_an_analyst_name(filled: Path) -> None:
    at = run_page("Review")
    at.button(key="review_submit").click().run()
    assert [e.value for e in at.error] == ["Enter your name before labelling."]
    store = open_store(filled)
    try:
        assert store.get(TOP_SCORE).label is None
    finally:
        store.close()


def test_cli_runs_streamlit_on_localhost_with_the_store_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(cli_dashboard.subprocess, "call", lambda cmd, env: calls.append((cmd, env)) or 0)
    result = CliRunner().invoke(cli_app, ["dashboard", "--store", "sqlite:///tmp/x.db", "--model", "m", "--port", "8600"])
    assert result.exit_code == 0, result.output
    (cmd, env), = calls
    assert cmd[1:4] == ["-m", "streamlit", "run"] and Path(cmd[4]) == Path(APP) and Path(APP).is_file()
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert env["FRAUDSTREAM_STORE"] == "sqlite:///tmp/x.db" and env["FRAUDSTREAM_MODEL"] == "m"


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def open_link(**params: str) -> AppTest:
    """The app opened from a link such as ?page=Alert&id=t00003."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    return at


def test_every_page_has_an_empty_state(store_path: Path) -> None:
    from fraudstream.dashboard.views import PAGES

    for page in PAGES:
        at = run_page(page)
        shown = [i.value for i in at.info] + [w.value for w in at.warning]
        assert shown, f"{page} shows nothing on an empty store"


def test_high_risk_ranks_cards_and_merchants_and_lists_open_alerts(filled: Path) -> None:
    at = run_page("High risk")
    cards, merchants = at.dataframe[0].value, at.dataframe[1].value
    assert list(cards["card"]) == ["c1", "c2", "c3"] and list(cards["alerts"]) == [3, 2, 1]
    assert list(merchants["alerts"]) == [2, 2, 2] and set(merchants["merchant"]) == {"m1", "m2", "m3"}
    open_alerts = at.dataframe[2].value
    assert list(open_alerts["transaction"][:3]) == ["t00002", "t00005", "t00003"]  # highest score first
    at.radio(key="risk_by").set_value("amount").run()
    cards = at.dataframe[0].value
    assert cards["card"].iloc[0] == "c1" and cards["alerted amount"].iloc[0] == pytest.approx(120.0 + 980.0 + 7.25)
    assert at.dataframe[1].value["merchant"].iloc[0] == "m3"  # 980 + 300


def test_high_risk_drops_reviewed_alerts_from_the_open_list(filled: Path) -> None:
    store = open_store(filled)
    store.set_label(TOP_SCORE, "fraud", "ana", T0 + 10 * HOUR)
    store.close()
    at = run_page("High risk")
    assert TOP_SCORE not in list(at.dataframe[2].value["transaction"])
    assert any("5 open alert(s)" in c.value for c in at.caption)


def test_time_ranges_are_anchored_at_the_newest_alert(filled: Path) -> None:
    store = open_store(filled)
    store.write([alert(7, -72, "c9", "m9", 50.0, 0.7, "old one")])  # three days before the others
    store.close()
    at = run_page("Trends")
    assert any("(7 in range)" in h.value for h in at.subheader)
    at.selectbox(key="trends_range").set_value("Last 24 hours").run()
    assert not at.exception, at.exception
    assert any("(6 in range)" in h.value for h in at.subheader)
    assert any("ranges end at the newest alert" in c.value for c in at.caption)


def test_trends_shows_every_breakdown(filled: Path) -> None:
    from fraudstream.dashboard.views.trends import histogram_frame

    at = run_page("Trends")
    titles = [h.value for h in at.subheader]
    assert titles[0] == "Alerts per hour (6 in range)"
    assert "Score distribution" in titles and "Amount distribution" in titles
    assert len(at.get("vega_lite_chart")) == 4  # over time, score, amount, by group (no heartbeats: no rate chart)
    for grouping in ("merchant_category", "country", "channel", "hour"):
        at.radio(key="trends_group").set_value(grouping).run()
        assert not at.exception, at.exception
    store = open_store(filled)
    try:
        scores = histogram_frame(store, "score", AlertQuery(), [0.0, 0.6, 0.8, 1.0])
        assert list(scores["alerts"]) == [1, 3, 2] and list(scores["bin"]) == ["0.00–0.60", "0.60–0.80", "0.80–1.00"]
    finally:
        store.close()


def test_map_draws_alerts_with_coordinates_and_a_cards_home(filled: Path) -> None:
    from fraudstream.dashboard.views.map import locations

    at = run_page("Map")
    assert any(c.value.startswith("5 alerts at 5 locations; 1 without merchant coordinates are left out.") for c in at.caption)
    assert len(at.get("vega_lite_chart")) == 1
    at.text_input(key="map_card").input("c1").run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("3 alerts at 3 locations.") for c in at.caption)
    frame = locations(ALERTS)
    assert list(frame["transaction"]) == ["t00001", "t00002", "t00003", "t00005", "t00006"]
    assert frame.loc[frame["transaction"] == "t00003", ["merchant_lat", "merchant_lon", "home_lat"]].values.tolist() == [[43.0, -83.0, 40.7]]


def test_map_counts_alerts_per_location_draws_outlines_and_labels_its_axes(store_path: Path) -> None:
    """992 alerts at 20 places are 20 marks that say 992, over country and state outlines with degree axes."""
    import json

    from fraudstream.dashboard.views.map import alert_map, by_place, locations

    alerts = [alert(n, n % 48, f"c{n % 40}", f"m{n % 20}", 10.0, 0.6 + (n % 7) / 100, "r") for n in range(5, 997)]
    alerts = [dataclasses.replace(a, record={**a.record, "merchant_lat": 30.0 + n % 20 / 2, "merchant_lon": -100.0 + n % 20})
              for n, a in enumerate(alerts)]
    places = by_place(locations(alerts))
    assert len(places) == 20 and places["alerts"].sum() == 992 and places["alerts"].max() == 50
    spec = alert_map(locations(alerts)).to_dict()
    outlines, marks = spec["layer"]
    assert marks["encoding"]["size"]["field"] == "alerts" and marks["encoding"]["color"]["field"] == "alerts"
    assert "°W" in marks["encoding"]["x"]["axis"]["labelExpr"] and marks["encoding"]["x"]["title"] == "longitude"
    assert marks["encoding"]["y"]["title"] == "latitude"
    lines = spec["datasets"][outlines["data"]["name"]]
    assert {row["layer"] for row in lines} == {"country", "state"} and len(lines) > 500  # the US and its states
    assert len(json.dumps(spec)) < 400_000  # thinned for the browser
    store = open_store(store_path)
    store.write(alerts)
    store.close()
    assert any(c.value.startswith("992 alerts at 20 locations.") for c in run_page("Map").caption)


def test_map_for_an_unknown_card_says_so(filled: Path) -> None:
    at = run_page("Map")
    at.text_input(key="map_card").input("nobody").run()
    assert [i.value for i in at.info] == ["No alerts for card 'nobody' in this range."]


def test_search_downloads_every_match_not_just_the_page(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import pandas as pd

    monkeypatch.setattr(pages_search, "PAGE_SIZE", 2)
    monkeypatch.setattr(pages_search, "EXPORT_BATCH", 4)
    at = run_page("Search")
    assert table_ids(at) == ["t00006", "t00005"]
    assert at.get("download_button")[0].proto.label == "Download all 6 as CSV"
    store = open_store(filled)
    try:
        csv = pd.read_csv(io.BytesIO(pages_search.export_csv(store, AlertQuery(min_score=0.6), "score")))
        assert list(csv["transaction"]) == ["t00002", "t00005", "t00003", "t00006", "t00001"]
        assert list(csv.columns)[:6] == ["transaction", "time (UTC)", "card", "merchant", "amount", "score"]
        capped = pd.read_csv(io.BytesIO(pages_search.export_csv(store, AlertQuery(), "time", cap=5)))
        assert len(capped) == 5
    finally:
        store.close()


def test_alert_page_from_a_link_shows_the_transaction_reasons_and_the_cards_other_alerts(filled: Path) -> None:
    at = open_link(page="Alert", id="t00003")
    assert at.radio(key="page").value == "Alert"
    assert at.subheader[0].value == "t00003 — score 0.7700 (threshold 0.550)"
    text = markdown_text(at)
    assert "amount is 8.3× this card's average" in text and "second reason" in text
    assert "**Card c1: 3 alert(s) in the store**" in text
    assert list(at.dataframe[0].value["transaction"]) == ["t00005", "t00001"]  # the card's others, newest first
    assert len(at.get("vega_lite_chart")) == 1  # score against threshold
    assert any("+0.220 from the threshold" in c.value for c in at.caption)


def test_alert_page_labels_and_shows_the_history(filled: Path) -> None:
    at = open_link(page="Alert", id="t00003")
    at.radio(key="alert_label").set_value("legitimate")
    at.text_input(key="alert_analyst").input("bob")
    at.text_area(key="alert_note").input("cardholder confirmed")
    at.button(key="alert_submit").click().run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["Labelled t00003 as legitimate (bob)."]
    assert any("Current label: **legitimate** by bob" in m.value for m in at.markdown)
    history = at.dataframe[0].value
    assert list(history["analyst"]) == ["bob"] and list(history["note"]) == ["cardholder confirmed"]
    store = open_store(filled)
    try:
        assert store.get("t00003").label == "legitimate"
    finally:
        store.close()


def test_alert_page_for_an_unknown_id_warns(filled: Path) -> None:
    at = open_link(page="Alert", id="nope")
    assert [w.value for w in at.warning] == ["No alert 'nope' in the store."]


def test_model_page_shows_the_bundle_and_precision_of_reviewed_alerts(filled: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from fraudstream.model.bundle import save_bundle
    from fraudstream.model.features import FEATURE_NAMES
    from fraudstream.model.train import train_bundle

    bundle = train_bundle(np.random.default_rng(0).normal(size=(400, len(FEATURE_NAMES))), created_at="2026-01-05T10:00:00Z")
    save_bundle(bundle, tmp_path / "model")
    monkeypatch.setenv("FRAUDSTREAM_MODEL", str(tmp_path / "model"))
    store = open_store(filled)
    for tid, label in (("t00002", "fraud"), ("t00005", "fraud"), ("t00003", "legitimate"), ("t00001", "unsure")):
        store.set_label(tid, label, "ana", T0 + 10 * HOUR)
    store.close()
    at = run_page("Model")
    assert metric(at, "Version") == bundle.version
    assert metric(at, "Trained (UTC)") == "2026-01-05 10:00"
    assert metric(at, "Threshold") == f"{bundle.threshold:.4f}"
    assert metric(at, "Alert budget") == "10 per 1,000"
    facts = dict(zip(at.dataframe[0].value["metric"], at.dataframe[0].value["value"]))
    assert facts["training transactions"] == "400" and facts["features"] == str(len(FEATURE_NAMES))
    assert facts["detector"] == "evidence" and facts["confirmed frauds in training"] == "no labels"
    assert facts["combined by"].startswith("an isolation forest over the evidence")
    roles = at.dataframe[1].value  # every feature, used (with its direction) or left out with the reason
    assert sorted(roles["feature"]) == sorted(FEATURE_NAMES)
    assert roles.set_index("feature").loc["day_of_week", "role"] == "left out: no fraud direction: not evidence on its own"
    assert roles.set_index("feature").loc["amount_log", "role"] == "used: larger is suspicious"
    assert metric(at, "Precision") == "66.7%"
    assert (metric(at, "Confirmed fraud"), metric(at, "Legitimate"), metric(at, "Unsure")) == ("2", "1", "1")
    bands = at.dataframe[2].value.set_index("score band")
    assert bands.loc["0.8–0.9", "fraud"] == 1 and bands.loc["0.9–1.0", "fraud"] == 1
    assert bands.loc["0.7–0.8", "legitimate"] == 1 and bands.loc["0.7–0.8", "precision"] == 0
    assert len(at.get("vega_lite_chart")) == 1  # score distribution over time


def test_model_page_without_labels_explains_precision_comes_later(filled: Path) -> None:
    at = run_page("Model")
    assert any("no model bundle" in w.value.lower() for w in at.warning)
    assert any("precision appears once analysts review alerts" in i.value for i in at.info)


def test_cli_serves_under_a_base_path_and_names_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(cli_dashboard.subprocess, "call", lambda cmd, env: calls.append(cmd) or 0)
    result = CliRunner().invoke(cli_app, ["dashboard", "--port", "8601", "--base-path", "/fraud/"])
    assert result.exit_code == 0, result.output
    assert calls[0][calls[0].index("--server.baseUrlPath") + 1] == "fraud"
    assert "http://127.0.0.1:8601/fraud/" in result.output
    assert cli_dashboard.url("0.0.0.0", 80, "") == "http://127.0.0.1:80/"


def test_cli_refuses_a_port_in_use_with_a_clear_error() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli_app, ["dashboard", "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot serve the dashboard on 127.0.0.1:{port}" in result.output and "--port" in result.output


def _time_wait_port() -> int:
    """A port whose only trace is a TIME_WAIT connection (what a stopped dashboard leaves for a minute)."""
    import socket

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Streamlit's server does (Linux keeps it in TIME_WAIT)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end of the connection, on `port`, goes to TIME_WAIT
        client.recv(1)  # wait for the FIN to arrive before closing our end
        client.close()
    return port


def test_a_port_left_in_time_wait_by_a_stopped_dashboard_counts_as_free() -> None:
    port = _time_wait_port()
    cli_dashboard.check_port_free("127.0.0.1", port)  # Ctrl-C then `make demo` again must not fail for a minute


def test_a_real_listener_is_reported_as_another_program() -> None:
    import socket

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: the probe must still see it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli_app, ["dashboard", "--port", str(port)])
    assert result.exit_code == 2
    assert f"127.0.0.1:{port} is in use by another program" in " ".join(result.output.split())


def test_live_shows_throughput_and_alert_rate_from_the_runners_heartbeats(filled: Path) -> None:
    import time

    from fraudstream.services.stores.alerts.base import RunnerStatus

    now = int(time.time() * 1000)
    store = open_store(filled)
    run = "demo generator on h (pid 1)"  # a replay at full speed, then 200/s: the average since start says 1,000/s
    store.write_status(RunnerStatus(run, now - 120_000, now - 300_000, 200_000, 199_000, 20, 10, 1_111.0))  # too old
    store.write_status(RunnerStatus(run, now - 55_000, now - 300_000, 230_000, 229_000, 30, 10, 1_000.0))
    store.write_status(RunnerStatus(run, now - 5_000, now - 300_000, 240_000, 238_990, 40, 10, 975.0))
    store.write_status(RunnerStatus("file old.csv on h (pid 2)", now - 600_000, now - 900_000, 100, 100, 50, 0, 9.0))  # silent
    store.close()
    at = run_page("Live")
    assert metric(at, "Throughput, last minute") == "200 tx/s"  # (240,000 - 230,000) rows in 50 s
    assert metric(at, "Average since start") == "975 tx/s"  # the running runner only
    assert metric(at, "Alert rate") == f"{40 * 1000 / 238_990:.1f} per 1,000"
    assert metric(at, "Read (this run)") == "240,000"
    states = " ".join(c.value for c in at.caption)
    assert f"{run}: running since" in states and "10 dead letters" in states and "file old.csv on h (pid 2): silent" in states
    at = run_page("Trends")
    assert "Alert rate, last 24 hours (wall clock)" in [h.value for h in at.subheader]
    assert len(at.get("vega_lite_chart")) == 5  # the alert-rate chart joins the four others


def test_live_without_heartbeats_says_where_the_numbers_come_from(filled: Path) -> None:
    at = run_page("Live")
    assert any("No pipeline has reported in the last 15 minutes" in c.value for c in at.caption)
    assert not [m for m in at.metric if m.label.startswith("Throughput")]


def test_a_card_number_is_shown_masked_never_in_clear(store_path: Path) -> None:
    """An alert whose card_id is a card number's keyed id shows the masked number on every page (PCI DSS 3.4.1)."""
    from fraudstream.model.schema import to_record, validate
    from fraudstream.services.pipeline.cards import CardIds

    txn = CardIds(b"dashboard-test-key").apply(validate(
        {"transaction_id": "t-pan", "timestamp": "2026-01-01T00:00:00Z", "card_id": "4111111111111111",
         "merchant_id": "m1", "amount": 12.5}))
    store = open_store(store_path)
    store.write([Alert("t-pan", T0, txn.card_id, "m1", 12.5, 0.9, 0.55, ("far from home",), "v1", to_record(txn))], [])
    store.close()
    at = open_link(page="Alert", id="t-pan")
    text = "\n".join(m.value for m in at.markdown) + "\n".join(str(at.dataframe[i].value) for i in range(len(at.dataframe)))
    assert "**Card `411111******1111`: 1 alert(s) in the store**" in text
    assert "4111111111111111" not in text
    live = run_page("Live")
    assert list(live.dataframe[0].value["card"]) == ["411111******1111"]
