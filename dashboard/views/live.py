"""Live page: what the pipeline is doing now (throughput, alert rate, dead letters, from the runners'
heartbeats) and the newest alerts, refreshed in place."""

from __future__ import annotations

import time

import streamlit as st

from fraudstream.dashboard.components import alerts_table
from fraudstream.dashboard.data import utc
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import RunnerStatus

EMPTY = "No alerts yet — start the pipeline with fraudstream demo"
REFRESH_SECONDS = 5
NEWEST = 50
RECENT_MS = 15 * 60_000  # runners that reported in the last 15 minutes are shown
SILENT_MS = 30_000  # no heartbeat for this long: the runner is not running any more


def latest_by_runner(statuses: list[RunnerStatus]) -> list[RunnerStatus]:
    """The newest heartbeat of each runner, newest runner first."""
    latest: dict[str, RunnerStatus] = {}
    for status in statuses:
        latest[status.runner] = status
    return sorted(latest.values(), key=lambda s: s.at_ms, reverse=True)


def state_of(status: RunnerStatus, now_ms: int) -> str:
    if status.finished:
        return "finished"
    return "running" if now_ms - status.at_ms <= SILENT_MS else "silent"


def render(store: AlertStore) -> None:
    st.header("Live")
    st.caption(f"Refreshes every {REFRESH_SECONDS} s.")
    _live(store)


def _pipeline(store: AlertStore, now_ms: int) -> None:
    runners = latest_by_runner(store.runner_statuses(since_ms=now_ms - RECENT_MS))
    if not runners:
        st.caption("No pipeline has reported in the last 15 minutes (throughput and alert rate come from its heartbeats).")
        return
    running = [s for s in runners if state_of(s, now_ms) == "running"]
    shown = running or runners[:1]
    scored = sum(s.scored for s in shown)
    alerts = sum(s.alerts for s in shown)
    c1, c2, c3 = st.columns(3)
    c1.metric("Throughput", f"{sum(s.rows_per_s for s in shown):,.0f} tx/s")
    c2.metric("Alert rate", f"{alerts * 1000 / scored:.1f} per 1,000" if scored else "—")
    c3.metric("Read (this run)", f"{sum(s.read for s in shown):,}")
    st.caption(" · ".join(f"{s.runner}: {state_of(s, now_ms)} since {utc(s.started_at_ms)} UTC, {s.dead_letters:,} dead letters"
                          + (f", lag {s.lag:,}" if s.lag is not None else "") for s in runners))


@st.fragment(run_every=REFRESH_SECONDS)
def _live(store: AlertStore) -> None:
    _pipeline(store, int(time.time() * 1000))
    alerts_total = store.count_alerts()
    letters = store.count_dead_letters()
    left, right = st.columns(2)
    left.metric("Alerts", f"{alerts_total:,}")
    right.metric("Dead letters", f"{letters:,}")
    if alerts_total == 0:
        st.info(EMPTY)
        return
    st.subheader(f"Newest {min(NEWEST, alerts_total)}")
    alerts_table(store.recent_alerts(NEWEST), key="live_newest")
