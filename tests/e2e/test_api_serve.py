"""``fraudstream serve`` as a real process: over HTTP, one request per transaction, it gives the scores,
reasons and alerts ``fraudstream score`` gives on the same file; and the Knative contract (``$PORT``
honoured, SIGTERM answers the request in flight before the process exits)."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import free_port, wait_for

BIN = Path(sys.executable).with_name("fraudstream")
KEY = "e2e-scoring-key-5f1c"
AUTH = {"Authorization": f"Bearer {KEY}"}
STOP_DEADLINE_S = 60


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained model (``m``) and a file to score with a retried row and a bad row in it (``live.csv``)."""
    root = tmp_path_factory.mktemp("api-e2e")
    for args in (["generate", "--out", "h.csv", "--cards", "300", "--days", "5", "--seed", "9"],
                 ["train", "--data", "h.csv", "--model-out", "m"],
                 ["generate", "--out", "fresh.csv", "--cards", "120", "--days", "3", "--seed", "31",
                  "--start", "2026-03-01T00:00:00+00:00"]):
        subprocess.run([str(BIN), *args], cwd=root, check=True, capture_output=True)
    with open(root / "fresh.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    bad = {**rows[5], "transaction_id": "bad-amount", "amount": "-4"}
    rows = rows[:40] + [rows[10], bad] + rows[40:]  # a retry of row 10 (same content) and a dead letter
    with open(root / "live.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def start(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(workdir / f"serve-{len(list(workdir.glob('serve-*.log')))}.log", "wb")
    environ = {k: v for k, v in os.environ.items() if k != "PORT"}  # only the tests that mean it set $PORT
    environ.update({"FRAUDSTREAM_API_KEYS": KEY, **(env or {})})
    return subprocess.Popen([str(BIN), "serve", "--model", "m", *args], cwd=workdir, env=environ,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def ready(base: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        pytest.fail(f"fraudstream serve exited with {process.returncode}", pytrace=False)
    try:
        return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("fraudstream serve did not stop on SIGTERM", pytrace=False)


@pytest.fixture
def server(workdir: Path) -> Iterator[str]:
    port = free_port()
    process = start(workdir, "--port", str(port), "--store", "sqlite://served.db")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: ready(base, process), "the API to be ready")
        yield base
    finally:
        assert stop(process) == 0


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def as_json(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as a JSON transaction (empty cells are absent, as the file reader treats them)."""
    return {k: v for k, v in row.items() if v != ""}


def test_over_http_one_by_one_it_answers_what_score_writes_for_the_file(workdir: Path, server: str) -> None:
    subprocess.run([str(BIN), "score", "--data", "live.csv", "--model", "m", "--out", "scored.csv"],
                   cwd=workdir, check=True, capture_output=True)
    expected = csv_rows(workdir / "scored.csv")
    answers, retries, refused = [], [], []
    with httpx.Client(base_url=server, headers=AUTH, timeout=30) as client:
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
