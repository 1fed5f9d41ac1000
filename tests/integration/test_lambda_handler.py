"""The scoring API's Lambda handler (``fraudstream.services.api.lambda_function.lambda_handler``) in the real AWS
Lambda Runtime Interface Emulator with the real runtime client (``python -m awslambdaric``), invoked with
API Gateway REST (v1) and HTTP API (v2) events built from tests/fixtures/apigateway.

This runs the handler from this environment; tests/integration/test_lambda_package.py runs the same
handler from the unpacked deployment zip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lambda_rie import SHAPES, Emulator, api_event, build_rie, running, train_small_model
from support import BASE, T0

import awslambdaric  # noqa: F401  the [api] extra: the handler runs under it

pytestmark = pytest.mark.integration

KEY = "lambda-test-key-0123456789"
HANDLER = "fraudstream.services.api.lambda_function.lambda_handler"


def txn(n: int, **fields: Any) -> dict[str, Any]:
    """A valid canonical transaction (JSON-ready) with id ``lam-<n>``, a minute apart."""
    return {**BASE, "transaction_id": f"lam-{n}", "timestamp": T0 + n * 60_000, **fields}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The handler under the emulator with a trained model, a SQLite alert store and one API key."""
    root = tmp_path_factory.mktemp("lambda")
    model = train_small_model(root)
    env = {**os.environ, "FRAUDSTREAM_MODEL": str(model), "FRAUDSTREAM_API_KEYS": KEY,
           "FRAUDSTREAM_STORE": f"sqlite://{root / 'alerts.db'}", "FRAUDSTREAM_API_STATE": "memory"}
    with running(build_rie(), HANDLER, cwd=root, log=root / "emulator.log", env=env) as emulator:
        yield emulator


def call(emulator: Emulator, event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Invoke; return the API's status code, JSON body and headers (failing with the log on a Lambda error)."""
    status, reply = emulator.invoke(event)
    assert status == 200 and "statusCode" in reply, f"{reply}\n{emulator.tail()}"
    assert reply["isBase64Encoded"] is False
    return reply["statusCode"], json.loads(reply["body"]), {k.lower(): v for k, v in reply["headers"].items()}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_good_transaction_gets_its_verdict(emulator: Emulator, shape: str) -> None:
    status, body, headers = call(emulator, api_event(shape, "POST", "/v1/score", txn(SHAPES.index(shape)), key=KEY))
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert body["transaction_id"] == f"lam-{SHAPES.index(shape)}"
    assert 0.0 <= body["score"] <= 1.0 and isinstance(body["alert"], bool)
    assert body["alert"] == (body["score"] >= body["threshold"])
    assert body["model_version"] and body["state_available"] is True


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("change", "field"), [({"amount": -5.0}, "amount"), ({"timestamp": None}, "timestamp")])
def test_a_malformed_transaction_is_422_naming_the_field(emulator: Emulator, shape: str, change: dict[str, Any],
                                                         field: str) -> None:
    bad = {k: v for k, v in {**txn(10), **change}.items() if v is not None}
    status, body, _ = call(emulator, api_event(shape, "POST", "/v1/score", bad, key=KEY))
    assert status == 422, body
    assert body["field"] == field and body["reason"], body


@pytest.mark.parametrize("shape", SHAPES)
def test_a_body_that_is_not_json_is_422(emulator: Emulator, shape: str) -> None:
    status, body, _ = call(emulator, api_event(shape, "POST", "/v1/score", "{not json", key=KEY))
    assert status == 422, body


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_without_a_valid_key_it_is_401_with_no_detail(emulator: Emulator, shape: str, key: str | None) -> None:
    status, body, _ = call(emulator, api_event(shape, "POST", "/v1/score", txn(20), key=key))
    assert status == 401
    assert body == {"error": "unauthorized"}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_batch_gets_one_result_per_transaction_in_order(emulator: Emulator, shape: str) -> None:
    base = 100 + 10 * SHAPES.index(shape)
    batch = [txn(base), txn(base + 1, amount=-1.0), txn(base + 2, amount=2500.0)]
    status, body, _ = call(emulator, api_event(shape, "POST", "/v1/score/batch", {"transactions": batch}, key=KEY))
    assert status == 200, body
    results = body["results"]
    assert [r.get("transaction_id") for r in results] == [f"lam-{base}", None, f"lam-{base + 2}"]
    assert results[1]["error"]["field"] == "amount"
    assert all(0.0 <= results[i]["score"] <= 1.0 for i in (0, 2))


def test_health_needs_no_key_and_says_the_model_is_loaded(emulator: Emulator) -> None:
    status, body, _ = call(emulator, api_event("http-v2", "GET", "/readyz"))
    assert status == 200, body
    assert body["status"] == "ok"


def test_the_container_was_initialised_once(emulator: Emulator) -> None:
    """Every invocation above was served by one runtime, started once: the model loads per container."""
    for _ in range(3):
        call(emulator, api_event("http-v2", "GET", "/healthz"))
    assert len(emulator.init_durations_ms()) == 1, emulator.tail()
    assert len(emulator.invoke_durations_ms()) >= 3  # and it served every invocation
