"""A search-engine store told to give up (a runner asked to stop) leaves its retries and a hung request at once,
whatever its retry budget; and it knows whether the engine ever answered. Fake transports: no engine needed."""

from __future__ import annotations

import threading
import time

import pytest

from fraudstream.services.stores.alerts.search_engine import (
    STOP_GRACE_S,
    SearchEngineAlertStore,
    SearchEngineSettings,
    StoreUnavailable,
    TransportFailure,
)

PATIENT = SearchEngineSettings(urls=("http://127.0.0.1:1",), retry_seconds=600, timeout=600)
SLACK_S = 3.0  # scheduling on a loaded machine; the budget it must not wait out is 600 s


class Refusing:
    """No engine there: every request fails at once."""

    def __init__(self) -> None:
        self.calls = 0

    def request(self, method, path, params, body, content_type, timeout):
        self.calls += 1
        raise TransportFailure("Connection refused")

    def close(self) -> None:
        pass


class Hanging:
    """An engine that accepts the connection and never answers (until the test ends)."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def request(self, method, path, params, body, content_type, timeout):
        self.entered.set()
        self.release.wait(timeout)
        raise TransportFailure("timed out")

    def close(self) -> None:
        self.release.set()


class Overloaded(Refusing):
    """An engine that answers, but only 503."""

    def request(self, method, path, params, body, content_type, timeout):
        self.calls += 1
        return 503, {"error": {"type": "cluster_block_exception", "reason": "not recovered"}}


def test_retries_end_as_soon_as_the_interrupt_says_so() -> None:
    transport = Refusing()
    store = SearchEngineAlertStore(transport, PATIENT)
    store.set_interrupt(lambda: transport.calls >= 3)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="gave up waiting"):
        store.count_alerts()
    assert transport.calls == 3 and time.monotonic() - started < SLACK_S
    assert not store.answered


def test_a_request_that_hangs_is_abandoned_soon_after_the_interrupt() -> None:
    transport = Hanging()
    store = SearchEngineAlertStore(transport, PATIENT)
    store.set_interrupt(transport.entered.is_set)  # the stop comes while the request hangs
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable, match="abandoned"):
            store.count_alerts()
        took = time.monotonic() - started
    finally:
        store.close()
    assert STOP_GRACE_S <= took < STOP_GRACE_S + SLACK_S  # the grace for an answer on its way, then no longer


def test_the_bulk_retry_loop_ends_on_the_interrupt_too() -> None:
    class Busy(Refusing):
        def request(self, method, path, params, body, content_type, timeout):
            if path == "/_bulk":
                self.calls += 1
                return 200, {"errors": True, "items": [{"create": {"status": 429, "error": {"type": "es_rejected"}}}]}
            return 200, {}

    from fraudstream.services.stores.alerts.base import Alert

    transport = Busy()
    store = SearchEngineAlertStore(transport, PATIENT)
    store.set_interrupt(lambda: transport.calls >= 3)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="overloaded or unavailable"):
        store.write([Alert("t1", 0, "c", "m", 1.0, 0.9, 0.5, ("r",), "v", {})])
    assert transport.calls == 3 and time.monotonic() - started < SLACK_S
    assert store.answered


def test_any_http_answer_counts_as_the_engine_answering() -> None:
    transport = Overloaded()
    store = SearchEngineAlertStore(transport, PATIENT)
    store.set_interrupt(lambda: transport.calls >= 2)
    with pytest.raises(StoreUnavailable, match="HTTP 503"):
        store.count_alerts()
    assert store.answered  # the URL is right: an outage, not a mistyped address


def test_without_an_interrupt_the_store_keeps_its_budget() -> None:
    transport = Refusing()
    store = SearchEngineAlertStore(transport, SearchEngineSettings(urls=("http://127.0.0.1:1",), retry_seconds=0.5))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.count_alerts()
    assert time.monotonic() - started >= 0.5 and transport.calls > 1
    assert "gave up waiting" not in str(caught.value)


def test_once_down_and_giving_up_nothing_more_is_sent_until_an_answer() -> None:
    transport = Refusing()
    store = SearchEngineAlertStore(transport, PATIENT)
    store.set_interrupt(lambda: transport.calls >= 1)
    with pytest.raises(StoreUnavailable):
        store.count_alerts()
    with pytest.raises(StoreUnavailable, match="not sent"):
        store.count_alerts()  # a last heartbeat while stopping: no request, no grace to wait out
    assert transport.calls == 1
