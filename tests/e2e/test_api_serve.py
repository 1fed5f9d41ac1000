"""``fraudstream serve`` as a real process: over HTTP, one request per transaction, it gives the scores,
reasons and alerts ``fraudstream score`` gives on the same file (with the state in the process or in Redis);
and the Knative contract (``$PORT``
honoured, SIGTERM answers the request in flight before the process exits)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_serve import AUTH, KEY, STOP_DEADLINE_S, as_json, csv_rows, ready, serving, start, stop
from redis_support import own_database
from support import BIN, free_port, wait_for


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def state(request: pytest.FixtureRequest) -> Iterator[str]:
    """The ``--state`` to serve with: this process's memory, or a database of the test's own in the project's Redis."""
    if request.param == "memory":
        yield "memory"
        return
    with own_database(request.getfixturevalue("redis_url")) as url:
        yield f"{url}?socket_timeout=30"  # a URL option of the Redis client: generous on a loaded machine


def test_over_http_one_by_one_it_answers_what_score_writes_for_the_file(workdir: Path, state: str) -> None:
    subprocess.run([str(BIN), "score", "--data", "live.csv", "--model", "m", "--out", "scored.csv"],
                   cwd=workdir, check=True, capture_output=True)
    expected = csv_rows(workdir / "scored.csv")
    answers, retries, refused = [], [], []
    with serving(workdir, "--state", state, "--store", f"sqlite://served-{state.partition(':')[0]}.db") as server, \
            httpx.Client(base_url=server, headers=AUTH, timeout=30) as client:
        for row in csv_rows(workdir / "live.csv"):
            response = client.post("/v1/score", json=as_json(row))
            if response.status_code == 422:
                refused.append(response.json())
            elif response.headers.get("X-Fraudstream-Retry") == "1":
                retries.append(response.json())
            else:
                assert response.status_code == 200, response.text
                answers.append(response.json())
        assert "server" not in response.headers  # no library name, not even in a header
        alerts, cursor = [], None
        while True:
            page = client.get("/v1/alerts", params={"limit": 100, **({"cursor": cursor} if cursor else {})}).json()
            alerts += [a["transaction_id"] for a in page["alerts"]]
            cursor = page["cursor"]
            if cursor is None:
                break
    assert all(a["state_available"] for a in answers)
    assert [a["transaction_id"] for a in answers] == [e["transaction_id"] for e in expected]
    assert [a["score"] for a in answers] == [float(e["score"]) for e in expected]
    assert [int(a["alert"]) for a in answers] == [int(e["alert"]) for e in expected]
    assert ["; ".join(a["reasons"]) for a in answers] == [e["reasons"] for e in expected]
    assert sorted(alerts) == sorted(e["transaction_id"] for e in expected if e["alert"] == "1")
    assert len(alerts) > 0, "the file should raise alerts"
    assert retries == [next(a for a in answers if a["transaction_id"] == retries[0]["transaction_id"])]
    assert [(r["field"], r["reason"]) for r in refused] == [("amount", "must be 0 or more, got -4.0")]


def test_port_comes_from_the_environment_when_no_flag_is_given(workdir: Path) -> None:
    port = free_port()
    process = start(workdir, "--store", "memory://", env={"PORT": str(port)})
    try:
        wait_for(lambda: ready(f"http://127.0.0.1:{port}", process), "the API on $PORT")
    finally:
        assert stop(process) == 0


def refused_connection(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except OSError:
        return True


def test_sigterm_answers_the_request_in_flight_then_exits(workdir: Path) -> None:
    port = free_port()
    process = start(workdir, "--store", "memory://", env={"PORT": str(port)})
    try:
        wait_for(lambda: ready(f"http://127.0.0.1:{port}", process), "the API to be ready")
        body = json.dumps({"transaction_id": "in-flight", "timestamp": "2026-03-01T10:00:00Z", "card_id": "c1",
                           "merchant_id": "m1", "amount": 42.0}).encode()
        head = (f"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", port), timeout=STOP_DEADLINE_S) as sock:
            sock.sendall(head + body[:10])  # a slow client: the request is in flight
            process.send_signal(signal.SIGTERM)
            wait_for(lambda: refused_connection(port), "the server to stop accepting connections")
            assert process.poll() is None  # still draining
            sock.sendall(body[10:])
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        status, _, rest = reply.partition(b"\r\n")
        assert status == b"HTTP/1.1 200 OK", reply
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["transaction_id"] == "in-flight"
        assert process.wait(timeout=STOP_DEADLINE_S) == 0
    finally:
        stop(process)


def test_without_a_key_or_a_model_serve_ends_at_once_with_one_clear_line(workdir: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_API_")}
    no_key = subprocess.run([str(BIN), "serve", "--model", "m", "--port", str(free_port())], cwd=workdir, env=environ,
                            capture_output=True, text=True, timeout=STOP_DEADLINE_S)
    assert no_key.returncode == 2
    assert "no API key configured: set FRAUDSTREAM_API_KEYS" in no_key.stderr and "Traceback" not in no_key.stderr
    no_model = subprocess.run([str(BIN), "serve", "--model", "nowhere", "--port", str(free_port())], cwd=workdir,
                              env={**environ, "FRAUDSTREAM_API_KEYS": KEY}, capture_output=True, text=True,
                              timeout=STOP_DEADLINE_S)
    assert no_model.returncode != 0 and "fraudstream train" in no_model.stderr and "Traceback" not in no_model.stderr


def test_several_workers_each_build_the_app_from_the_command_s_settings(workdir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start(workdir, "--port", str(port), "--workers", "2", "--store", "sqlite://workers.db")
    try:
        wait_for(lambda: ready(base, process), "two workers to be ready")
        row = as_json(csv_rows(workdir / "live.csv")[0])
        answer = httpx.post(f"{base}/v1/score", json=row, headers=AUTH, timeout=30)
        assert answer.status_code == 200 and answer.json()["state_available"] is True
        assert httpx.post(f"{base}/v1/score", json=row, timeout=30).status_code == 401  # keys apply in every worker
    finally:
        assert stop(process) == 0
