"""API keys: both header forms, unknown and missing keys, the label scope, rotation through the keys file,
refusing to start without a key, and keys never reaching a log or a response."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import LABEL_KEY, LABELLING, SCORING, SCORING_KEY
from fraudstream.services.api import auth
from fraudstream.services.api.auth import ApiKeysMissing

TXN = {"transaction_id": "sec-1", "timestamp": "2026-02-02T10:00:00Z", "card_id": "c1", "merchant_id": "m1",
       "amount": 12.5}


def test_a_scoring_key_works_as_bearer_and_as_x_api_key(client: TestClient) -> None:
    assert client.post("/v1/score", json=TXN, headers=SCORING).status_code == 200
    assert client.post("/v1/score", json={**TXN, "transaction_id": "sec-2"}, headers={"X-API-Key": SCORING_KEY}).status_code == 200


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-key"}, {"X-API-Key": "wrong-key"}, {"Authorization": f"Basic {SCORING_KEY}"},
    {"Authorization": "Bearer "},
])
@pytest.mark.parametrize("method, path", [("POST", "/v1/score"), ("POST", "/v1/score/batch"), ("GET", "/v1/alerts"),
                                          ("GET", "/v1/alerts/x"), ("POST", "/v1/alerts/x/labels"), ("GET", "/metrics"),
                                          ("GET", "/openapi.json")])
def test_no_key_or_an_unknown_one_is_401_without_detail(client: TestClient, headers: dict[str, str], method: str, path: str) -> None:
    response = client.request(method, path, json=TXN, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


def test_health_and_readiness_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_labelling_needs_a_label_key_and_a_label_key_cannot_score(client: TestClient) -> None:
    first = client.post("/v1/score/batch", json={"transactions": [TXN]}, headers=SCORING)
    assert first.status_code == 200
    label = {"label": "fraud", "analyst": "ana", "note": "chargeback"}
    refused = client.post("/v1/alerts/sec-1/labels", json=label, headers=SCORING)
    assert refused.status_code == 403 and refused.json() == {"error": "forbidden"}
    assert client.post("/v1/score", json={**TXN, "transaction_id": "sec-9"}, headers=LABELLING).status_code == 403
    assert client.get("/v1/alerts", headers=LABELLING).status_code == 200  # both scopes read


def test_a_rotated_key_file_takes_effect_without_a_restart_with_two_keys_valid_at_once(
    make_app: Callable[..., FastAPI], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "RECHECK_S", 0.0)  # look at the file on every request
    keys = tmp_path / "keys"
    keys.write_text("old-key\n")
    with TestClient(make_app(FRAUDSTREAM_API_KEYS=None, FRAUDSTREAM_API_KEYS_FILE=str(keys))) as c:
        def status(key: str, tid: str) -> int:
            return c.post("/v1/score", json={**TXN, "transaction_id": tid}, headers={"X-API-Key": key}).status_code

        assert (status("old-key", "r1"), status("new-key", "r2")) == (200, 401)
        keys.write_text("old-key\n# rotating\nnew-key\n")
        assert (status("old-key", "r3"), status("new-key", "r4")) == (200, 200)
        keys.write_text("new-key\n")
        assert (status("old-key", "r5"), status("new-key", "r6")) == (401, 200)


def test_an_unreadable_keys_file_later_keeps_the_keys_read_before(
    make_app: Callable[..., FastAPI], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "RECHECK_S", 0.0)
    keys = tmp_path / "keys"
    keys.write_text("k-1\n")
    with TestClient(make_app(FRAUDSTREAM_API_KEYS=None, FRAUDSTREAM_API_KEYS_FILE=str(keys))) as c:
        keys.unlink()  # a remount in progress
        assert c.post("/v1/score", json=TXN, headers={"X-API-Key": "k-1"}).status_code == 200


def test_without_any_key_the_app_refuses_to_start_unless_insecure_mode_is_asked(make_app: Callable[..., FastAPI]) -> None:
    with pytest.raises(ApiKeysMissing, match="FRAUDSTREAM_API_KEYS"):
        make_app(FRAUDSTREAM_API_KEYS=None)
    with pytest.raises(ApiKeysMissing):
        make_app(FRAUDSTREAM_API_KEYS=" , ")  # only blanks: no key
    with TestClient(make_app(FRAUDSTREAM_API_KEYS=None, FRAUDSTREAM_API_INSECURE_NO_AUTH="true")) as c:
        assert c.post("/v1/score", json=TXN).status_code == 200


def test_a_missing_keys_file_at_start_is_refused(make_app: Callable[..., FastAPI], tmp_path: Path) -> None:
    with pytest.raises(ApiKeysMissing, match="cannot read the API keys file"):
        make_app(FRAUDSTREAM_API_KEYS=None, FRAUDSTREAM_API_KEYS_FILE=str(tmp_path / "absent"))


def test_keys_never_reach_a_log_a_response_or_the_app_state(
    make_app: Callable[..., FastAPI], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app()
    texts: list[str] = []
    with TestClient(app, raise_server_exceptions=False) as c:
        for headers in (SCORING, LABELLING, {"X-API-Key": "not-a-key-but-secret"}):
            for method, path in (("POST", "/v1/score"), ("GET", "/v1/alerts"), ("GET", "/metrics"), ("POST", "/v1/alerts/sec-1/labels")):
                response = c.request(method, path, json=TXN, headers=headers)
                texts.append(response.text + str(response.headers))
    texts += [r.getMessage() for r in caplog.records]
    guard: Any = app.state.guard
    texts.append(repr(vars(guard.scoring)) + repr(vars(guard.labelling)))
    for secret in (SCORING_KEY, LABEL_KEY, "not-a-key-but-secret"):
        assert not any(secret in text for text in texts), secret


def test_a_key_over_its_rate_limit_gets_429_and_other_keys_go_on(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(FRAUDSTREAM_API_RATE_LIMIT="0.01")) as c:  # one request, then one per 100 s
        first = c.post("/v1/score", json=TXN, headers=SCORING)
        second = c.post("/v1/score", json={**TXN, "transaction_id": "sec-2"}, headers=SCORING)
        assert (first.status_code, second.status_code) == (200, 429)
        assert second.json() == {"error": "too many requests"} and second.headers["Retry-After"] == "1"
        assert c.get("/v1/alerts", headers=LABELLING).status_code == 200  # its own bucket
    with TestClient(make_app()) as c:  # no limit by default
        assert [c.post("/v1/score", json={**TXN, "transaction_id": f"n{i}"}, headers=SCORING).status_code
                for i in range(5)] == [200] * 5
