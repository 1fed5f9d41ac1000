"""The Streamlit dashboard, driven headless with streamlit.testing's AppTest over a SQLite alert store."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from support import HOUR, T0
from typer.testing import CliRunner

import fraudstream.dashboard
from fraudstream.dashboard import pages_search
from fraudstream.services.cli import app as cli_app
from fraudstream.services.stores.alerts import open_store
from fraudstream.services.stores.alerts.base import Alert
from fraudstream.services.stores.dead_letters import DeadLetter

cli_dashboard = importlib.import_module("fraudstream.services.cli.dashboard")  # the package re-exports the function
APP = str(Path(fraudstream.dashboard.__file__).with_name("app.py"))
EMPTY = "No alerts yet — start the pipeline with fraudstream demo"


def alert(n: int, hours: int, card: str, merchant: str, amount: float, score: float, reason: str) -> Alert:
    record = {"transaction_id": f"t{n:05d}", "merchant_category": "grocery", "country": "US", "channel": "online"}
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
    assert list(frame.columns) == ["transaction", "time (UTC)", "card", "merchant", "amount", "score", "why"]
    assert frame["why"].iloc[0] == "night-time spend"


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


def test_review_lookup_shows_label_history(filled: Path) -> None:
    store = open_store(filled)
    store.set_label("t00003", "unsure", "bob", T0 + 10 * HOUR, "call cardholder")
    store.close()
    at = run_page("Review")
    assert "t00003" not in table_ids(at)
    at.text_input(key="review_lookup").input("t00003").run()
    assert not at.exception
    history = at.dataframe[0].value
    assert list(history["analyst"]) == ["bob"] and list(history["label"]) == ["unsure"]


def test_trends_page_runs(filled: Path) -> None:
    at = run_page("Trends")
    assert not at.info
    at.selectbox(key="trends_group").set_value("hour").run()
    assert not at.exception, at.exception


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
