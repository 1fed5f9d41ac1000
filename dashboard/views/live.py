"""Live page: what the pipeline is doing now (throughput over the last minute and since the start, alert rate,
dead letters, from the runners' heartbeats) and the newest alerts, refreshed in place."""

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
RATE_WINDOW_MS = 60_000  # "now" for throughput: the last minute of heartbeats


def latest_by_runner(statuses: list[RunnerStatus]) -> list[RunnerStatus]:
    """The newest heartbeat of each runner, newest runner first."""
    latest: dict[str, RunnerStatus] = {}
    for status in statuses:
        latest[status.runner] = status
    return sorted(latest.values(), key=lambda s: s.at_ms, reverse=True)


def recent_rate(statuses: list[RunnerStatus], latest: RunnerStatus, window_ms: int = RATE_WINDOW_MS) -> float:
    """Rows per second over the last ``window_ms`` of ``latest``'s run, from its heartbeats' read counters.

    A run younger than the window, or with one heartbeat in it, falls back to its average since start (the same
    thing then, near enough): the average of a long run says little about now (a replay at full speed, then 200/s).
    """
    since = latest.at_ms - window_ms
    beats = [s for s in statuses if s.runner == latest.runner and s.started_at_ms == latest.started_at_ms
             and since <= s.at_ms < latest.at_ms]
    if not beats:
        return latest.rows_per_s
    oldest = min(beats, key=lambda s: s.at_ms)
    return (latest.read - oldest.read) * 1000 / (latest.at_ms - oldest.at_ms)


def state_of(status: RunnerStatus, now_ms: int) -> str:
    if status.finished:
        return "finished"
    return "running" if now_ms - status.at_ms <= SILENT_MS else "silent"


def render(store: AlertStore) -> None:
    st.header("Live")
    st.caption(f"Refreshes every {REFRESH_SECONDS} s.")
    _live(store)


def _pipeline(store: AlertStore, now_ms: int) -> None:
    statuses = store.runner_statuses(since_ms=now_ms - RECENT_MS)
    runners = latest_by_runner(statuses)
    if not runners:
        st.caption("No pipeline has reported in the last 15 minutes (throughput and alert rate come from its heartbeats).")
        return
    running = [s for s in runners if state_of(s, now_ms) == "running"]
    shown = running or runners[:1]
    scored = sum(s.scored for s in shown)
    alerts = sum(s.alerts for s in shown)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Throughput, last minute", f"{sum(recent_rate(statuses, s) for s in running):,.0f} tx/s",
              help="Rows read per second over the last minute of the running runners' heartbeats.")
    c2.metric("Average since start", f"{sum(s.rows_per_s for s in shown):,.0f} tx/s",
              help="Rows read per second since each runner started (a replay at full speed counts here).")
    c3.metric("Alert rate", f"{alerts * 1000 / scored:.1f} per 1,000" if scored else "—")
    c4.metric("Read (this run)", f"{sum(s.read for s in shown):,}")
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
