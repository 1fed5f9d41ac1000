"""Alerts over HTTP (the store's search with its filters and cursor, one alert, labels into the audit
trail), the error bodies (nothing internal leaks), CORS off by default, and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import LABELLING, SCORING
from fraudstream.services.stores.alerts.base import AlertQuery


@pytest.fixture
def scored(client: TestClient, rows: list[dict[str, Any]]) -> TestClient:
    response = client.post("/v1/score/batch", json={"transactions": rows[:600]}, headers=SCORING)
    assert response.status_code == 200
    return client


def store_of(client: TestClient) -> Any:
    return client.app.state.runtime.service.store  # type: ignore[attr-defined]


@pytest.mark.parametrize("params, query", [
    ({}, AlertQuery()),
    ({"min_score": 0.7}, AlertQuery(min_score=0.7)),
    ({"min_amount": 50, "max_amount": 500}, AlertQuery(min_amount=50, max_amount=500)),
    ({"start": "2026-02-02T00:00:00Z", "end": "2026-02-03T00:00:00Z"},
     AlertQuery(start_ms=1_769_990_400_000, end_ms=1_770_076_800_000)),
    ({"label": "unlabelled"}, AlertQuery(label="unlabelled")),
])
@pytest.mark.parametrize("sort", ["time", "score", "amount"])
def test_search_pages_through_what_the_store_search_returns(scored: TestClient, params: dict[str, Any], query: AlertQuery, sort: str) -> None:
    seen, cursor = [], None
    while True:
        page = scored.get("/v1/alerts", params={**params, "sort": sort, "limit": 3, **({"cursor": cursor} if cursor else {})},
                          headers=SCORING).json()
        seen += [a["transaction_id"] for a in page["alerts"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    expected = store_of(scored).search(query, sort=sort, limit=10_000)
    assert seen == [a.transaction_id for a in expected.alerts]
    assert page["total"] == expected.total


def test_one_alert_and_its_labels_go_into_the_same_audit_trail_as_the_dashboard(scored: TestClient) -> None:
    first = store_of(scored).search(AlertQuery(), limit=1).alerts[0]
    tid = first.transaction_id
    detail = scored.get(f"/v1/alerts/{tid}", headers=SCORING).json()
    assert (detail["score"], detail["reasons"], detail["history"]) == (first.score, list(first.reasons), [])
    for label, note in (("unsure", "call the customer"), ("fraud", "chargeback")):
        response = scored.post(f"/v1/alerts/{tid}/labels", json={"label": label, "analyst": "ana", "note": note}, headers=LABELLING)
        assert response.status_code == 200
    assert response.json()["label"] == "fraud" and response.json()["labelled_by"] == "ana"
    history = store_of(scored).label_history(tid)
    assert [(e.label, e.analyst, e.note) for e in history] == [("unsure", "ana", "call the customer"), ("fraud", "ana", "chargeback")]
    assert [h["label"] for h in response.json()["history"]] == ["unsure", "fraud"]
    labelled = scored.get("/v1/alerts", params={"label": "fraud"}, headers=SCORING).json()
    assert [a["transaction_id"] for a in labelled["alerts"]] == [tid]


@pytest.mark.parametrize("body, field", [
    ({"label": "maybe", "analyst": "ana"}, "label"),
    ({"label": "fraud"}, "analyst"),
    ({"label": "fraud", "analyst": ""}, "analyst"),
    ({"label": "fraud", "analyst": "a", "extra": 1}, "extra"),
])
def test_a_bad_label_is_422_naming_the_field(scored: TestClient, body: dict[str, Any], field: str) -> None:
    tid = store_of(scored).search(AlertQuery(), limit=1).alerts[0].transaction_id
    response = scored.post(f"/v1/alerts/{tid}/labels", json=body, headers=LABELLING)
    assert response.status_code == 422
    assert response.json()["field"] == field


@pytest.mark.parametrize("body", [b"\xff\xfe not utf-8", b"{not json", b"\xc3"])
def test_a_label_body_that_is_not_json_is_422_naming_the_body_as_on_the_scoring_routes(scored: TestClient, body: bytes) -> None:
    """Found by Schemathesis: a body that is not UTF-8 was a 400 the document does not list."""
    tid = store_of(scored).search(AlertQuery(), limit=1).alerts[0].transaction_id
    headers = {**LABELLING, "Content-Type": "application/json"}
    response = scored.post(f"/v1/alerts/{tid}/labels", content=body, headers=headers)
    assert (response.status_code, response.json()) == (422, {"error": "invalid request", "field": "body", "reason": "not valid JSON"})
    assert scored.post("/v1/score", content=body, headers={**SCORING, "Content-Type": "application/json"}).status_code == 422


def test_unknown_alerts_are_404_and_bad_filters_422(scored: TestClient) -> None:
    assert scored.get("/v1/alerts/nope", headers=SCORING).json() == {"error": "not found"}
    assert scored.post("/v1/alerts/nope/labels", json={"label": "fraud", "analyst": "a"}, headers=LABELLING).status_code == 404
    for params, field in (({"cursor": "garbage"}, "cursor"), ({"sort": "name"}, "sort"), ({"label": "x"}, "label"),
                          ({"min_score": "high"}, "min_score"), ({"start": "last week"}, "start"), ({"limit": 0}, "limit")):
        response = scored.get("/v1/alerts", params=params, headers=SCORING)
        assert response.status_code == 422, params
        assert response.json()["field"] == field


class BrokenStore:
    """An alert store that fails with the kind of message that must never reach a caller."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError('sqlite3.OperationalError at /srv/fraudstream/services/stores/alerts/sqlite.py line 12')
        return fail


def test_an_unexpected_error_is_a_bare_500_with_nothing_internal(client: TestClient) -> None:
    client.app.state.runtime.service.store = BrokenStore()  # type: ignore[attr-defined]
    responses = [client.get("/v1/alerts", headers=SCORING), client.get("/v1/alerts/x", headers=SCORING)]
    for response in responses:
        assert response.status_code == 500
        assert response.json() == {"error": "internal error"}
    everything = " ".join(r.text + str(r.headers) for r in responses).lower()
    for leak in ("traceback", "sqlite", "/srv", ".py", "starlette", "fastapi", "uvicorn", "pydantic", "runtimeerror"):
        assert leak not in everything


@pytest.mark.parametrize("method, path", [("GET", "/nowhere"), ("DELETE", "/v1/score"), ("GET", "/docs")])
def test_unknown_routes_and_methods_answer_short_json(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, headers=SCORING)
    assert response.status_code in (404, 405)
    assert set(response.json()) == {"error"}


def test_422_messages_name_no_library(client: TestClient) -> None:
    response = client.get("/v1/alerts", params={"min_score": "x", "limit": "many"}, headers=SCORING)
    assert "pydantic" not in response.text.lower() and "url" not in response.json()


def test_cors_is_off_by_default_and_on_for_configured_origins(make_app: Callable[..., FastAPI]) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with TestClient(make_app()) as c:
        assert "access-control-allow-origin" not in c.options("/v1/score", headers=preflight).headers
    with TestClient(make_app(FRAUDSTREAM_API_CORS_ORIGINS="https://ops.example")) as c:
        allowed = c.options("/v1/score", headers={**preflight, "Origin": "https://ops.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
        assert "access-control-allow-origin" not in c.options("/v1/score", headers=preflight).headers


def test_the_openapi_document_has_the_endpoints_with_examples(client: TestClient) -> None:
    doc = client.get("/openapi.json", headers=SCORING).json()
    score = doc["paths"]["/v1/score"]["post"]
    assert score["requestBody"]["content"]["application/json"]["example"]["transaction_id"]
    assert {"200", "401", "403", "413", "422"} <= set(score["responses"])
    assert doc["components"]["schemas"]["ScoreOut"]["examples"]
    assert doc["components"]["schemas"]["LabelIn"]["examples"]
    assert {"/v1/score/batch", "/v1/alerts", "/v1/alerts/{transaction_id}", "/v1/alerts/{transaction_id}/labels",
            "/healthz", "/readyz", "/metrics"} <= set(doc["paths"])
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert score["security"] == [{"bearer": []}, {"apiKey": []}] and "security" not in doc["paths"]["/healthz"]["get"]
