"""The AWS Lambda Runtime Interface Emulator that scripts/services/lambda-rie builds runs a Python handler
through the real runtime client (``python -m awslambdaric``) and answers API Gateway REST (v1) and HTTP
API (v2) events (tests/fixtures/apigateway/) the way Lambda does.

A throw-away handler echoes what it received, so the test proves the whole chain (emulator -> runtime
API -> awslambdaric -> handler -> reply) before the scoring API's handler exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, free_port, service, stop_group

import awslambdaric  # noqa: F401  the [api] extra: the handler runs under it

pytestmark = pytest.mark.integration

EVENTS = ROOT / "tests" / "fixtures" / "apigateway"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
START_TIMEOUT_S = 60
INVOKE_TIMEOUT_S = 120  # the first invocation also starts the runtime and imports the handler

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
    path = service("lambda-rie", "build", timeout=1800)
    assert os.access(path, os.X_OK), f"lambda-rie build printed {path!r}, which is not an executable"
    return path


def invoke(url: str, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST one event to the emulator's invoke endpoint; return the HTTP status and the JSON it answered."""
    request = urllib.request.Request(f"{url}{INVOKE_PATH}", data=json.dumps(event).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_listening(url: str, process: subprocess.Popen, log: Path) -> None:
    """Wait until the emulator accepts HTTP requests (any answer counts); fail with its log if it never does."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the emulator exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            urllib.request.urlopen(f"{url}/", timeout=5).close()
            return
        except urllib.error.HTTPError:
            return  # 404 for /: it is listening
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the emulator did not listen on {url} within {START_TIMEOUT_S} s:\n"
                        f"{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)


@pytest.fixture
def emulator(rie: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The echo handler under the emulator on free loopback ports; yields its URL and log, stops it after."""
    (tmp_path / "echo_handler.py").write_text(HANDLER)
    port, runtime_port = free_port(), free_port()
    while runtime_port == port:
        runtime_port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "emulator.log"
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "fraudstream-echo"}
    env.pop("AWS_LAMBDA_MAX_CONCURRENCY", None)  # it switches the emulator to another mode
    with log.open("wb") as out:
        process = subprocess.Popen(
            [rie, "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
             "--runtime-api-address", f"127.0.0.1:{runtime_port}",
             sys.executable, "-m", "awslambdaric", "echo_handler.handler"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_listening(url, process, log)
        yield url, log
    finally:
        stop_group(process)


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.mark.parametrize("name, shape", [("rest-v1.json", "rest-v1"), ("http-v2.json", "http-v2")])
def test_api_gateway_event_reaches_the_handler_and_its_reply_comes_back(emulator: tuple[str, Path],
                                                                        name: str, shape: str) -> None:
    url, log = emulator
    event = load(name)
    status, reply = invoke(url, event)
    assert status == 200, f"{reply}\n{log.read_text(errors='replace')[-4000:]}"
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
    assert body["function_name"] == "fraudstream-echo"
    assert body["request_id"]  # the emulator gave the invocation an id

    # The same container answers again (warm), with a new request id.
    status, again = invoke(url, event)
    assert status == 200, again
    assert json.loads(again["body"])["request_id"] != body["request_id"]


def test_a_handler_error_comes_back_as_a_lambda_error(emulator: tuple[str, Path]) -> None:
    url, _ = emulator
    event = load("http-v2.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/boom"
    status, reply = invoke(url, event)
    # Like Lambda's Invoke API, the emulator answers 200 with the error as the payload (it sends no
    # X-Amz-Function-Error header, so the payload is the only way to tell).
    assert status == 200, reply
    assert reply["errorType"] == "ValueError", reply
    assert reply["errorMessage"] == "boom requested"

    # The runtime survives a failed invocation: the next good event is answered.
    status, good = invoke(url, load("http-v2.json"))
    assert status == 200 and good["statusCode"] == 200, good


def test_build_is_cached_by_version_and_path_agrees(rie: str) -> None:
    """A second build is a no-op that prints the same binary, which `path` names too."""
    version = service("lambda-rie", "version")
    assert version.startswith("v0.0.0-") and f"lambda-rie-{version}" in rie  # cached by the pinned version
    assert service("lambda-rie", "build") == rie
    assert service("lambda-rie", "path") == rie
