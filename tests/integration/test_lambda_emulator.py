"""The AWS Lambda Runtime Interface Emulator that scripts/services/lambda-rie builds runs a Python handler
through the real runtime client (``python -m awslambdaric``) and answers API Gateway REST (v1) and HTTP
API (v2) events (tests/fixtures/apigateway/) the way Lambda does.

A throw-away handler echoes what it received, so the test proves the whole chain (emulator -> runtime
API -> awslambdaric -> handler -> reply) before the scoring API's handler exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lambda_rie import EVENTS, Emulator, build_rie, running
from support import service

import awslambdaric  # noqa: F401  the [api] extra: the handler runs under it

pytestmark = pytest.mark.integration


HANDLER = '''
"""Echo what API Gateway sent, in the reply shape API Gateway expects."""
import json

def handler(event, context):
    if event.get("version") == "2.0":
        shape, method, path = "http-v2", event["requestContext"]["http"]["method"], event["rawPath"]
        source_ip = event["requestContext"]["http"]["sourceIp"]
        content_type = event["headers"]["content-type"]
    else:
        shape, method, path = "rest-v1", event["httpMethod"], event["path"]
        source_ip = event["requestContext"]["identity"]["sourceIp"]
        content_type = event["headers"]["Content-Type"]
    if path == "/boom":
        raise ValueError("boom requested")
    body = {
        "shape": shape,
        "method": method,
        "path": path,
        "query": event.get("queryStringParameters"),
        "source_ip": source_ip,
        "content_type": content_type,
        "echo": json.loads(event["body"]),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
    }
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps(body), "isBase64Encoded": False}
'''


@pytest.fixture(scope="module")
def rie() -> str:
    """The emulator binary, built once and cached by version (a no-op when cached)."""
    return build_rie()


@pytest.fixture
def emulator(rie: str, tmp_path: Path) -> Iterator[Emulator]:
    """The echo handler under the emulator on free loopback ports; stopped after the test."""
    (tmp_path / "echo_handler.py").write_text(HANDLER)
    with running(rie, "echo_handler.handler", cwd=tmp_path, log=tmp_path / "emulator.log") as started:
        yield started


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.mark.parametrize("name, shape", [("rest-v1.json", "rest-v1"), ("http-v2.json", "http-v2")])
def test_api_gateway_event_reaches_the_handler_and_its_reply_comes_back(emulator: Emulator, name: str, shape: str) -> None:
    event = load(name)
    status, reply = emulator.invoke(event)
    assert status == 200, f"{reply}\n{emulator.tail()}"
    assert reply["statusCode"] == 200, reply
    assert reply["headers"] == {"content-type": "application/json"}
    assert reply["isBase64Encoded"] is False
    body = json.loads(reply["body"])
    assert body["shape"] == shape
    assert body["method"] == "POST" and body["path"] == "/v1/score"
    assert body["query"] == {"explain": "true"}
    assert body["source_ip"] == "198.51.100.7"
    assert body["content_type"] == "application/json"
    assert body["echo"] == json.loads(event["body"])
    assert body["function_name"] == "fraudstream-scoring"  # the name tests.lambda_rie.running gives it
    assert body["request_id"]  # the emulator gave the invocation an id

    # The same container answers again (warm), with a new request id.
    status, again = emulator.invoke(event)
    assert status == 200, again
    assert json.loads(again["body"])["request_id"] != body["request_id"]


def test_a_handler_error_comes_back_as_a_lambda_error(emulator: Emulator) -> None:
    event = load("http-v2.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/boom"
    status, reply = emulator.invoke(event)
    # Like Lambda's Invoke API, the emulator answers 200 with the error as the payload (it sends no
    # X-Amz-Function-Error header, so the payload is the only way to tell).
    assert status == 200, reply
    assert reply["errorType"] == "ValueError", reply
    assert reply["errorMessage"] == "boom requested"

    # The runtime survives a failed invocation: the next good event is answered.
    status, good = emulator.invoke(load("http-v2.json"))
    assert status == 200 and good["statusCode"] == 200, good


def test_build_is_cached_by_version_and_path_agrees(rie: str) -> None:
    """A second build is a no-op that prints the same binary, which `path` names too."""
    version = service("lambda-rie", "version")
    assert version.startswith("v0.0.0-") and f"lambda-rie-{version}" in rie  # cached by the pinned version
    assert service("lambda-rie", "build") == rie
    assert service("lambda-rie", "path") == rie
