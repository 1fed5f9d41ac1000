"""The Elasticsearch and OpenSearch alert stores on real nodes: volume, refusals, outages, layout, labels.

The contract suite (tests/contract) checks that they answer like every other store; this file checks
what only a search engine can get wrong. Nodes come from scripts/services/* (left running for reuse),
except in the restart test, which starts, stops and deletes a node of its own on free ports.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from support import HOUR, ROOT, SERVICE_DEADLINE_S, T0, service, wait_for

# The interface's errors, the ones the runners catch (store_writes.write_batch)
from fraudstream.services.stores.alerts.base import Alert, AlertQuery, RejectedDocuments, StoreUnavailable
from fraudstream.services.stores.alerts.registry import open_store
from fraudstream.services.stores.alerts.search_engine import SearchEngineAlertStore
from fraudstream.services.stores.dead_letters import DeadLetter

pytestmark = pytest.mark.integration

ENGINES = ["elasticsearch", "opensearch"]
DAY = 24 * HOUR


@functools.cache
def node(engine: str) -> str:
    """host:port of the shared local node (FRAUDSTREAM_TEST_<ENGINE>_URL, or started by its script)."""
    url = os.environ.get(f"FRAUDSTREAM_TEST_{engine.upper()}_URL") or service(engine, "start")
    return url.split("://", 1)[-1].rstrip("/")


def open_search_store(engine: str, address: str, **options: Any) -> SearchEngineAlertStore:
    query = "&".join(f"{k}={v}" for k, v in {"prefix": f"fsit-{uuid.uuid4().hex[:12]}", **options}.items())
    store = open_store(f"{engine}://{address}?{query}")
    assert isinstance(store, SearchEngineAlertStore)
    return store


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest) -> Iterator[SearchEngineAlertStore]:
    opened = open_search_store(request.param, node(request.param))
    try:
        yield opened
    finally:
        opened.drop()
        opened.close()


def alert(n: int, t_ms: int = T0, **record: Any) -> Alert:
    base = {"transaction_id": f"t{n:06d}", "amount": 25.0 + n % 100, "merchant_category": "grocery", "country": "US",
            "channel": "online", "card_lat": 40.7, "card_lon": -74.0, "merchant_lat": 34.05, "merchant_lon": -118.25}
    return Alert(f"t{n:06d}", t_ms, f"card-{n % 997}", f"m-{n % 113}", 25.0 + n % 100, 0.55 + (n % 45) / 100, 0.55,
                 ("amount is 8.3× this card's 30-day average ($50.00)", "1,240 km from the previous transaction"), "v1",
                 {**base, **record})


def engine_count(store: SearchEngineAlertStore, query: dict[str, Any]) -> int:
    """Count with a raw engine query (what the store's own API does not expose, e.g. geo)."""
    _, data = store._ok("POST", f"/{store.alias}/_count", {"query": query}, store._read_params())
    return int(data["count"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- volume and idempotency


def test_100000_alerts_written_twice_are_100000(store: SearchEngineAlertStore) -> None:
    alerts = [alert(i, T0 + i * 60_000) for i in range(100_000)]  # a minute apart: 70 days, three months
    started = time.perf_counter()
    store.write(alerts)
    store.write(alerts)  # a replay of everything: same ids, same indices
    elapsed = time.perf_counter() - started
    store.refresh()
    assert store.count_alerts() == 100_000
    assert store.search(AlertQuery(), limit=1).total == 100_000
    assert sum(store.count_by("hour", AlertQuery()).values()) == 100_000
    print(f"{store.engine}: 2 × 100,000 alerts in {elapsed:.1f}s ({200_000 / elapsed:,.0f} alerts/s)")


def test_duplicates_within_one_batch_leave_the_last_copy(store: SearchEngineAlertStore) -> None:
    # Tiny bulk requests, two in flight: copies of t1 in different requests must not race.
    small = open_search_store(store.engine.lower(), node(store.engine.lower()), prefix=store.settings.prefix, bulk_docs=2)
    copies = [alert(1, T0 + k, note=f"copy {k}") for k in range(10)]
    batch = [item for k, copy in enumerate(copies) for item in (copy, alert(100 + k))]
    small.write(batch)
    small.refresh()
    assert small.count_alerts() == 11
    assert small.get("t000001") == copies[-1]
    small.close()


# --------------------------------------------------------------------------- refusals and outages


def test_a_rejected_document_is_named_and_the_rest_of_the_batch_is_stored(store: SearchEngineAlertStore) -> None:
    batch = [alert(i) for i in range(20)]
    batch[7] = alert(7, merchant_lat=123.0)  # no such latitude: the geo_point refuses it
    letter = DeadLetter("file:x.csv", "3", "amount", "must be greater than 0", "t3,...,-1")
    with pytest.raises(RejectedDocuments) as caught:
        store.write(batch, [letter])
    error = caught.value
    assert [tid for tid, _ in error.rejected] == ["t000007"]
    assert "merchant_location" in error.rejected[0][1] or "lat" in error.rejected[0][1].lower()
    assert "t000007" in str(error)
    store.refresh()
    assert store.count_alerts() == 19 and store.get("t000007") is None
    assert store.count_dead_letters() == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_an_unreachable_engine_raises_store_unavailable_within_the_retry_budget(engine: str) -> None:
    store = open_search_store(engine, f"127.0.0.1:{free_port()}", retry_seconds=2, timeout=1)  # nothing listens there
    try:
        for attempt in (lambda: store.write([alert(1)]), lambda: store.count_alerts(), lambda: store.get("t000001")):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                attempt()
            elapsed = time.monotonic() - started
            assert 1.5 <= elapsed <= 2.0 + 8.0, elapsed  # it did retry, and gave up near its budget (slack: a loaded machine)
            assert isinstance(caught.value, ConnectionError) and "127.0.0.1" in str(caught.value)
    finally:
        store.close()


# --------------------------------------------------------------------------- layout


def test_alerts_live_in_monthly_indices_behind_the_alias(store: SearchEngineAlertStore) -> None:
    dec, jan, feb = T0 - DAY, T0 + DAY, T0 + 40 * DAY  # 2025-12-31, 2026-01-02, 2026-02-10
    store.write([alert(1, dec), alert(2, jan), alert(3, jan + HOUR), alert(4, feb, merchant_lat=None, card_lat=None)])
    store.refresh()
    p = store.settings.prefix
    assert store.alert_indices() == [f"{p}-alerts-2025.12", f"{p}-alerts-2026.01", f"{p}-alerts-2026.02"]
    _, mappings = store._ok("GET", f"/{p}-alerts-2026.01/_mapping")
    fields = mappings[f"{p}-alerts-2026.01"]["mappings"]["properties"]
    assert fields["timestamp"]["type"] == "date" and fields["card_id"]["type"] == "keyword"
    assert fields["merchant_location"]["type"] == "geo_point" and fields["record"]["index"] is False
    assert fields["reasons"]["type"] == "text" and fields["reasons"]["fields"]["keyword"]["type"] == "keyword"
    near_la = {"geo_distance": {"distance": "10km", "merchant_location": {"lat": 34.0, "lon": -118.3}}}
    assert engine_count(store, near_la) == 3  # t4 has no merchant location: omitted, not (0, 0)
    assert engine_count(store, {"exists": {"field": "card_location"}}) == 3
    assert store.drop_alerts_before(T0) == [f"{p}-alerts-2025.12"]  # December ends at T0
    assert store.alert_indices() == [f"{p}-alerts-2026.01", f"{p}-alerts-2026.02"]
    assert store.count_alerts() == 3 and store.get("t000001") is None


def test_labels_survive_rewrites_even_before_a_refresh(store: SearchEngineAlertStore) -> None:
    store.write([alert(1), alert(2)])
    # no refresh: the label finds the alert by a real-time get, and the audit trail is visible at once
    labelled = store.set_label("t000001", "fraud", "ana", T0 + 1000, "confirmed")
    assert labelled.label == "fraud" and labelled.transaction_id == "t000001"
    changed = dataclasses.replace(alert(1, merchant_lat=None, merchant_lon=None), score=0.99, reasons=("changed",))
    store.write([changed, alert(2)])  # the replay: new fields, same id, label untouched
    store.refresh()
    got = store.get("t000001")
    assert got is not None and (got.label, got.labelled_by, got.label_note) == ("fraud", "ana", "confirmed")
    assert (got.score, got.reasons, got.record) == (0.99, ("changed",), changed.record)
    assert engine_count(store, {"exists": {"field": "merchant_location"}}) == 1  # the rewrite cleared t1's
    assert [e.label for e in store.label_history("t000001")] == ["fraud"]
    assert store.count_alerts(AlertQuery(label="unlabelled")) == 1


# --------------------------------------------------------------------------- a node that stops and comes back


@pytest.mark.parametrize("engine", ENGINES)
def test_writes_resume_after_the_node_restarts(engine: str) -> None:
    var = ROOT / "var" / "services" / f"{engine}-restart-test"  # a node of our own: the shared one keeps running
    env = {**os.environ, f"{engine.upper()}_PORT": str(free_port()), f"{engine.upper()}_TRANSPORT_PORT": str(free_port()),
           f"{engine.upper()}_VAR_DIR": str(var)}
    script = str(ROOT / "scripts" / "services" / engine)

    def run(command: str) -> str:
        done = subprocess.run([script, command], env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    address = run("start").split("://", 1)[-1]
    try:
        prefix = f"fsit-{uuid.uuid4().hex[:12]}"
        # A freshly started node on a loaded machine may take long to answer: only the store that must fail
        # fast while the node is down gets a short budget, and it is never asked to succeed within it.
        patient = open_search_store(engine, address, prefix=prefix, retry_seconds=SERVICE_DEADLINE_S, timeout=30)
        impatient = open_search_store(engine, address, prefix=prefix, retry_seconds=2, timeout=2)
        patient.write([alert(i) for i in range(100)])
        patient.set_label("t000003", "fraud", "ana", T0)
        run("stop")
        with pytest.raises(StoreUnavailable):
            impatient.write([alert(i) for i in range(100, 200)])
        restarter = threading.Thread(target=run, args=("start",))
        restarter.start()  # a node takes seconds to start: the write below begins while it is down
        started = time.monotonic()
        patient.write([alert(i) for i in range(100, 200)])  # waits out the restart, then goes in
        restarter.join()
        assert time.monotonic() - started > 1.0

        def impatient_writes() -> bool:
            try:
                impatient.write([alert(i) for i in range(200, 300)])
            except StoreUnavailable:
                return False  # still too slow for a 2 s budget: try again until the deadline
            return True

        wait_for(impatient_writes, "the impatient store to write again after the restart")  # it recovers too
        patient.refresh()
        assert patient.count_alerts() == 300 and patient.get("t000003").label == "fraud"
        patient.drop()
        patient.close()
        impatient.close()
    finally:
        run("reset")
