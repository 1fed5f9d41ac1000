"""The dashboard served by ``fraudstream dashboard`` and looked at in a real headless Chromium."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from support import HOUR, T0, wait_for_streamlit

from fraudstream.services.stores.alerts import open_store
from fraudstream.services.stores.alerts.base import Alert

pytestmark = pytest.mark.slow


def alert(n: int, hours: int, card: str, amount: float, score: float, reason: str) -> Alert:
    """Alert ``t<n, 5 digits>`` at ``hours`` after T0 on merchant m1, over threshold 0.55."""
    record = {"transaction_id": f"t{n:05d}", "merchant_category": "grocery", "country": "US", "channel": "online"}
    return Alert(f"t{n:05d}", T0 + hours * HOUR, card, "m1", amount, score, 0.55, (reason, "second reason"), "v1", record)


ALERTS = [
    alert(1, 0, "c1", 120.0, 0.61, "far from home"),
    alert(2, 1, "c2", 15.5, 0.93, "card-testing pattern"),
    alert(3, 2, "c1", 980.0, 0.77, "amount is 8.3× this card's average"),
]


def test_live_page_shows_the_alert_count_and_newest_alerts(
    tmp_path: Path, page: Page, serve_dashboard: Callable[..., AbstractContextManager[str]], screenshots: Path,
) -> None:
    store = open_store(tmp_path / "alerts.db")
    store.write(ALERTS)
    store.close()
    with serve_dashboard(tmp_path / "alerts.db", tmp_path / "no-model") as url:
        page.goto(url)
        alerts_metric = page.get_by_test_id("stMetric").filter(has=page.get_by_text("Alerts", exact=True))
        expect(alerts_metric.get_by_test_id("stMetricValue")).to_have_text("3")
        # st.dataframe draws on a canvas; its cells' text is in a visually hidden accessibility table.
        table = page.get_by_test_id("stDataFrame")
        expect(table.get_by_role("gridcell", name="t00003", exact=True, include_hidden=True)).to_have_count(1)
        wait_for_streamlit(page)  # the Live fragment reruns every few seconds: no running indicator in the picture
        page.screenshot(path=screenshots / "live.png", full_page=True)
