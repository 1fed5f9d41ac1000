"""``fraudstream demo`` end to end in a real headless Chromium: alerts arrive in the Live view, an analyst opens
one and labels it fraud, and the label is in the alert store. Screenshots of every page go to var/screenshots/."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from support import BIN, free_port, serving, wait_for_streamlit

from fraudstream.dashboard.views import PAGES
from fraudstream.services.stores.alerts import open_store

pytestmark = pytest.mark.slow

SHOTS = {"Live": "live", "High risk": "high-risk", "Trends": "trends", "Map": "map", "Search": "search",
         "Review": "review", "Model": "model"}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The demo on free ports in a fresh directory: (dashboard URL, demo directory)."""
    port, directory = free_port(), tmp_path / "demo"
    log = tmp_path / "demo.log"
    args = [str(BIN), "demo", "--dir", str(directory), "--cards", "300", "--history-days", "4", "--live-days", "3",
            "--rate", "400", "--no-live-view", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with serving(args, url, log):
        yield url, directory


def open_page(page: Page, name: str) -> None:
    """Click a page in the sidebar and wait for it to draw."""
    page.get_by_test_id("stSidebar").get_by_text(name, exact=True).click()
    expect(page.get_by_test_id("stHeading").filter(has_text=name).first).to_be_visible()  # the new page, not the last
    wait_for_streamlit(page)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)  # lazily loaded widgets have drawn


def test_demo_alerts_show_up_live_and_a_label_reaches_the_store(demo: tuple[str, Path], page: Page, screenshots: Path) -> None:
    url, directory = demo
    page.goto(url)
    alerts = page.get_by_test_id("stMetric").filter(has=page.get_by_text("Alerts", exact=True)).get_by_test_id("stMetricValue")
    expect(alerts).to_have_text(re.compile(r"^[1-9][\d,]*$"), timeout=90_000)  # the Live fragment refreshes by itself
    throughput = page.get_by_test_id("stMetric").filter(has=page.get_by_text("Throughput, last minute", exact=True))
    expect(throughput.get_by_test_id("stMetricValue")).to_have_text(re.compile(r"^[\d,]+ tx/s$"))  # heartbeats
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)  # our page list only, not Streamlit's file pages
    assert set(SHOTS) | {"Alert"} == set(PAGES)

    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()  # the newest alerts have drawn
    for name, shot in SHOTS.items():
        if name != "Live":
            open_page(page, name)
        wait_for_streamlit(page)
        page.screenshot(path=screenshots / f"{shot}.png", full_page=True)

    open_page(page, "Review")
    heading = page.get_by_test_id("stHeading").filter(has_text=" — score ").first.inner_text()
    transaction_id = heading.split(" — ")[0].strip()
    page.goto(f"{url}/?page=Alert&id={transaction_id}")  # an alert's own link
    expect(page.get_by_text(f"{transaction_id} — score", exact=False).first).to_be_visible()
    page.get_by_test_id("stRadio").get_by_text("fraud", exact=True).click()
    page.get_by_label("Analyst").fill("e2e-analyst")
    page.get_by_label("Note").fill("confirmed with the cardholder")
    page.get_by_role("button", name="Save label").click()
    expect(page.get_by_text(f"Labelled {transaction_id} as fraud (e2e-analyst).")).to_be_visible()
    expect(page.get_by_text("Current label: fraud by e2e-analyst", exact=False)).to_be_visible()
    wait_for_streamlit(page)
    page.screenshot(path=screenshots / "alert.png", full_page=True)

    store = open_store(directory / "alerts.db")
    try:
        stored = store.get(transaction_id)
        assert (stored.label, stored.labelled_by, stored.label_note) == ("fraud", "e2e-analyst", "confirmed with the cardholder")
    finally:
        store.close()


def test_the_dashboard_serves_under_an_ingress_path_prefix(tmp_path: Path, page: Page, serve_dashboard) -> None:
    store = tmp_path / "alerts.db"
    open_store(store).close()
    with serve_dashboard(store, tmp_path / "no-model", base_path="/fraud") as url:
        assert url.endswith("/fraud")
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:  # the readiness probe
            assert response.status == 200 and response.read() == b"ok"
        page.goto(f"{url}/")
        expect(page.get_by_text("No alerts yet — start the pipeline with fraudstream demo")).to_be_visible()
