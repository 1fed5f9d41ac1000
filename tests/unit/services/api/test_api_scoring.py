"""Scoring over HTTP: the same answers as the pure scorer, retries answered once, refusals in dead-letter
words, alerts in the store, degraded answers when the state store fails, and the metrics that count them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import SCORING
from fraudstream.model.bundle import ModelBundle
from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.schema import Transaction, validate
from fraudstream.model.scoring import Scorer
from fraudstream.services.api import runtime
from fraudstream.services.pipeline.core import EventTimeWindow, Intake
from fraudstream.services.stores.dead_letters import DeadLetter

N = 400


def post(client: TestClient, row: dict[str, Any]) -> Any:
    return client.post("/v1/score", json=row, headers=SCORING)


def metric(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics", headers=SCORING).text
    wanted = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""
    for line in text.splitlines():
        if line.startswith(name + wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_answers_equal_the_pure_scorer_in_order_and_alerts_land_in_the_store(
    client: TestClient, rows: list[dict[str, Any]], bundle: ModelBundle
) -> None:
    expected = Scorer(bundle).decide_batch([validate(r) for r in rows[:N]])
    answers = [post(client, r).json() for r in rows[:N]]
    assert [a["score"] for a in answers] == [d.score for d in expected]
    assert [a["alert"] for a in answers] == [d.alert for d in expected]
    assert [tuple(a["reasons"]) for a in answers] == [d.reasons for d in expected]
    assert all(a["state_available"] and a["model_version"] == bundle.version for a in answers)
    alerted = {d.transaction_id for d in expected if d.alert}
    assert alerted, "the test needs alerts"
    page = client.get("/v1/alerts", params={"limit": 1000}, headers=SCORING).json()
    assert {a["transaction_id"] for a in page["alerts"]} == alerted
    assert metric(client, "fraudstream_api_decisions_total", decision="alert") == len(alerted)


def test_a_retry_gets_the_first_answer_and_is_not_counted_or_scored_twice(
    client: TestClient, rows: list[dict[str, Any]], bundle: ModelBundle
) -> None:
    sequence = rows[:60]
    expected = Scorer(bundle).decide_batch([validate(r) for r in sequence])
    answers = []
    for row in sequence:
        first = post(client, row)
        again = post(client, row)  # e.g. the gateway timed out and retried
        assert again.json() == first.json()
        assert again.headers["X-Fraudstream-Retry"] == "1" and "X-Fraudstream-Retry" not in first.headers
        answers.append(first.json())
    assert [a["score"] for a in answers] == [d.score for d in expected]  # the retries moved no state
    decisions = metric(client, "fraudstream_api_decisions_total", decision="alert") + \
        metric(client, "fraudstream_api_decisions_total", decision="pass")
    assert decisions == len(sequence)
    assert metric(client, "fraudstream_api_retries_total") == len(sequence)


def test_a_reused_id_with_other_content_is_a_conflict_in_dead_letter_words(client: TestClient, rows: list[dict[str, Any]]) -> None:
    row = rows[0]
    assert post(client, row).status_code == 200
    response = post(client, {**row, "amount": row["amount"] + 1})
    assert response.status_code == 409
    assert response.json() == {"error": "conflict", "field": "transaction_id",
                               "reason": "was already used by another transaction of this card (same id, different content)"}


BAD = [
    {"timestamp": "2026-02-02T10:00:00Z", "card_id": "c", "merchant_id": "m", "amount": 1},
    {"transaction_id": "b", "timestamp": "2026-02-02T10:00:00Z", "card_id": "c", "merchant_id": "m", "amount": -3},
    {"transaction_id": "b", "timestamp": "yesterday", "card_id": "c", "merchant_id": "m", "amount": 3},
    {"transaction_id": "b", "timestamp": "2026-02-02T10:00:00Z", "card_id": "c", "merchant_id": "m", "amount": 3, "currency": "EURO"},
    {"transaction_id": "b", "timestamp": "2026-02-02T10:00:00Z", "card_id": "c", "merchant_id": "m", "amount": 3, "card_lat": 123},
    {"transaction_id": "b", "timestamp": "1999-02-02T10:00:00Z", "card_id": "c", "merchant_id": "m", "amount": 3},
    {"transaction_id": "b", "timestamp": "2099-02-02T10:00:00Z", "card_id": "c", "merchant_id": "m", "amount": 3},
]


@pytest.mark.parametrize("row", BAD)
def test_an_invalid_transaction_is_422_naming_the_field_in_the_dead_letter_words(client: TestClient, row: dict[str, Any]) -> None:
    letter = Intake("reference", window=EventTimeWindow(not_before_ms=1_767_225_600_000)).admit(1, row)
    assert isinstance(letter, DeadLetter)
    response = post(client, row)
    assert response.status_code == 422
    now = re.compile(r"the clock \([^)]*\)")  # the two intakes read the wall clock a moment apart
    body = {**response.json(), "reason": now.sub("the clock", response.json()["reason"])}
    assert body == {"error": "invalid transaction", "field": letter.field, "reason": now.sub("the clock", letter.reason)}


@pytest.mark.parametrize("body, reason", [(b"{not json", "not valid JSON"), (b"[1, 2]", "the message is not a JSON object"),
                                          (b"", "not valid JSON")])
def test_a_body_that_is_not_a_json_object_is_422(client: TestClient, body: bytes, reason: str) -> None:
    response = client.post("/v1/score", content=body, headers={**SCORING, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["reason"].startswith(reason)


def test_invalid_transactions_become_dead_letters_in_the_store(client: TestClient) -> None:
    post(client, BAD[1])
    store = client.app.state.runtime.service.store  # type: ignore[attr-defined]
    letters = store.dead_letters()
    assert [(d.field, d.source) for d in letters] == [("amount", "api")]


def test_a_batch_answers_each_in_order_with_refusals_in_place(
    client: TestClient, rows: list[dict[str, Any]], bundle: ModelBundle
) -> None:
    good = rows[:50]
    expected = Scorer(bundle).decide_batch([validate(r) for r in good])
    items: list[Any] = [*good[:20], BAD[1], 7, *good[20:]]
    results = client.post("/v1/score/batch", json={"transactions": items}, headers=SCORING).json()["results"]
    assert len(results) == len(items)
    assert results[20] == {"error": {"error": "invalid transaction", "field": "amount", "reason": "must be 0 or more, got -3.0"}}
    assert results[21]["error"]["reason"] == "the message is not a JSON object"
    scored = results[:20] + results[22:]
    assert [r["score"] for r in scored] == [d.score for d in expected]


def test_a_batch_over_the_limit_is_413_and_a_body_over_the_limit_is_413(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(FRAUDSTREAM_API_MAX_BATCH="3", FRAUDSTREAM_API_MAX_BODY_BYTES="2048")) as c:
        row = {"transaction_id": "x", "timestamp": "2026-02-02T10:00:00Z", "card_id": "c", "merchant_id": "m", "amount": 1}
        response = c.post("/v1/score/batch", json={"transactions": [row] * 4}, headers=SCORING)
        assert response.status_code == 413 and response.json()["field"] == "transactions"
        big = {**row, "note": "x" * 3000}
        assert c.post("/v1/score", json=big, headers=SCORING).status_code == 413

        def chunks() -> Any:  # no Content-Length: the limit counts the bytes as they come
            yield b'{"transaction_id": "y", "pad": "'
            for _ in range(10):
                yield b"z" * 500
            yield b'"}'

        chunked = c.post("/v1/score", content=chunks(), headers={**SCORING, "Content-Type": "application/json"})
        assert chunked.status_code == 413
        assert c.post("/v1/score", json=row, headers=SCORING).status_code == 200  # and it goes on serving


class FlakyState(FeatureState):
    """A state store that fails like an unreachable server while ``down`` is set."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.down = False

    def features(self, txn: Transaction) -> tuple[float, ...]:
        if self.down:
            raise ConnectionError("state store unreachable")
        return super().features(txn)

    def ping(self) -> None:  # what readiness asks a remote store
        if self.down:
            raise ConnectionError("state store unreachable")

    def remember_id(self, txn: Transaction) -> int:
        if self.down:
            raise ConnectionError("state store unreachable")
        return super().remember_id(txn)


def test_with_the_state_store_down_it_answers_from_the_transaction_alone_and_says_so(
    make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]], bundle: ModelBundle
) -> None:
    state = FlakyState(ttl_ms=None)
    monkeypatch.setattr(runtime, "open_state", lambda url, ttl_ms: state)
    with TestClient(make_app()) as c:
        before = [post(c, r).json() for r in rows[:30]]
        assert all(a["state_available"] for a in before)
        state.down = True
        during = [post(c, r).json() for r in rows[30:40]]
        assert [a["state_available"] for a in during] == [False] * 10
        alone = [Scorer(bundle, FeatureState()).decide(validate(r)).score for r in rows[30:40]]
        assert [a["score"] for a in during] == alone
        assert c.get("/readyz").json() == {"status": "degraded", "checks": {
            "model": "ok", "state_store": "unreachable", "alert_store": "ok"}}
        assert metric(c, "fraudstream_api_state_store_errors_total") == 10
        retried = post(c, rows[0])  # answered before the outage: the same answer, not a degraded one
        assert retried.json() == before[0] and retried.headers["X-Fraudstream-Retry"] == "1"
        state.down = False
        after = post(c, rows[40]).json()
        assert after["state_available"] is True
        assert c.get("/readyz").json()["status"] == "ok"


def test_not_ready_until_the_model_is_loaded(make_app: Callable[..., FastAPI], rows: list[dict[str, Any]]) -> None:
    app = make_app()
    c = TestClient(app)  # no lifespan: the app has not started
    assert c.get("/readyz").status_code == 503
    assert c.post("/v1/score", json=rows[0], headers=SCORING).status_code == 503
    with TestClient(app) as started:
        assert started.get("/readyz").status_code == 200


def test_the_memory_state_is_serialised_and_a_remote_one_is_not(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app()) as c:
        service = c.app.state.runtime.service  # type: ignore[attr-defined]
        assert service.state.thread_safe is False and service.thread_safe is False  # the service holds a lock


def test_requests_are_counted_by_route_template_and_status(client: TestClient, rows: list[dict[str, Any]]) -> None:
    post(client, rows[0])
    client.post("/v1/score", json=rows[1])
    client.get("/v1/alerts/nope", headers=SCORING)
    client.get("/no/such/path")
    assert metric(client, "fraudstream_api_requests_total", method="POST", route="/v1/score", status="200") == 1
    assert metric(client, "fraudstream_api_requests_total", method="POST", route="/v1/score", status="401") == 1
    assert metric(client, "fraudstream_api_requests_total", method="GET", route="/v1/alerts/{transaction_id}", status="404") == 1
    assert metric(client, "fraudstream_api_requests_total", method="GET", route="unmatched", status="404") == 1
    assert metric(client, "fraudstream_api_request_seconds_count", route="/v1/score") == 2


def test_the_model_is_loaded_once_per_process_even_if_startup_runs_again(make_app: Callable[..., FastAPI]) -> None:
    app = make_app()  # an adapter such as Mangum runs the startup and shutdown around every event
    with TestClient(app):
        first = app.state.runtime.service
    with TestClient(app) as again:
        assert app.state.runtime.service is first
        assert again.get("/readyz").status_code == 200
