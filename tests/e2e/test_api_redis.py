"""``fraudstream serve --state redis://…`` as a real process against a real redis-server: many parallel requests
for one card and one merchant lose no update (from threads of one worker and across two workers), and a Redis
killed and restarted mid-run costs no answer — they say ``state_available: false`` while it is down, are
counted in ``/metrics``, and are whole again after the restart."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_serve import AUTH, metric, serving
from redis_support import assert_same_state, command_calls, hot_rows, run_script
from support import BASE, T0, pid_alive, wait_for

from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.schema import validate
from fraudstream.services.stores.state import open_state_store

pytestmark = pytest.mark.integration

CLIENT_THREADS = 8
STATE_ERRORS = "fraudstream_api_state_store_errors_total"


def generous(url: str) -> str:
    """``url`` with a Redis client timeout a loaded machine never reaches (a URL option of the Redis client)."""
    return f"{url}?socket_timeout=30"


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_requests_for_one_card_and_one_merchant_lose_no_update(
        workdir: Path, private_redis: tuple[str, int, Path], workers: int) -> None:
    url, _, _ = private_redis
    rows = hot_rows()
    answers: list[tuple[int, dict[str, Any]]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    go = threading.Barrier(CLIENT_THREADS)
    multi_before = command_calls(url, "multi")

    def post(share: list[dict[str, Any]], base: str) -> None:
        try:
            with httpx.Client(base_url=base, headers=AUTH, timeout=120) as client:
                go.wait()
                for row in share:
                    response = client.post("/v1/score", json=row)
                    with lock:
                        answers.append((response.status_code, response.json()))
        except BaseException as error:  # reported below: a lost request must fail the test, not vanish with its thread
            failures.append(error)

    with serving(workdir, "--state", generous(url), "--store", "memory://", "--workers", str(workers)) as base:
        threads = [threading.Thread(target=post, args=(rows[k::CLIENT_THREADS], base)) for k in range(CLIENT_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not failures, f"a client thread failed: {failures[0]!r}"
    assert {status for status, _ in answers} == {200}
    assert sorted(a["transaction_id"] for _, a in answers) == sorted(r["transaction_id"] for r in rows)
    assert all(a["state_available"] for _, a in answers)
    # Each event is two optimistic transactions (its id remembered, then its features); more MULTIs than that
    # are the retries of transactions another request's write interrupted: the requests did collide.
    assert command_calls(url, "multi") - multi_before > 2 * len(rows), "no two requests ever collided: the test proved nothing"

    sequential = FeatureState()
    for row in sorted(rows, key=lambda r: r["timestamp"]):
        sequential.features(validate(row))
    shared = open_state_store("redis", url=generous(url))  # the key prefix the API uses by default
    try:
        assert_same_state(shared.snapshot(), sequential)
    finally:
        shared.close()
    assert sequential.cards["card-hot"].seen > 1000


def test_redis_killed_and_restarted_mid_run_answers_keep_coming_degraded_then_whole(
        workdir: Path, private_redis: tuple[str, int, Path]) -> None:
    url, port, var = private_redis
    answers: list[dict[str, Any]] = []
    bad: list[str] = []  # anything but a 200: a 5xx, a refusal, a transport error
    stop = threading.Event()

    def score(base: str) -> None:
        i = 0
        with httpx.Client(base_url=base, headers=AUTH, timeout=120) as client:
            while not stop.is_set():
                txn = {**BASE, "transaction_id": f"o{i}", "timestamp": T0 + i * 1000, "card_id": f"card-{i % 10}"}
                try:
                    response = client.post("/v1/score", json=txn)
                except httpx.TransportError as error:
                    bad.append(f"{type(error).__name__}: {error}")
                    return
                if response.status_code != 200:
                    bad.append(f"{response.status_code}: {response.text}")
                    return
                answers.append(response.json())
                i += 1
                stop.wait(0.002)  # pacing, not synchronisation: leave the machine's cores to Redis and the script

    def seen(available: bool, since: int = 0) -> bool:
        return bool(bad) or any(a["state_available"] is available for a in answers[since:])

    with serving(workdir, "--state", generous(url), "--store", "memory://") as base:
        scorer = threading.Thread(target=score, args=(base,))
        scorer.start()
        try:
            wait_for(lambda: len(answers) >= 30 or bad, "answers with Redis up")
            assert metric(base, STATE_ERRORS) == 0
            pid = int((var / "redis.pid").read_text())
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(pid), "redis-server to die")
            wait_for(lambda: seen(False), "an answer flagged state_available: false")
            assert not bad, bad[0]
            ready = httpx.get(f"{base}/readyz", timeout=30)
            assert ready.status_code == 200 and ready.json()["checks"]["state_store"] == "unreachable"
            assert metric(base, STATE_ERRORS) >= 1
            first_down = next(i for i, a in enumerate(answers) if not a["state_available"])
            run_script("start", port, var)
            wait_for(lambda: seen(True, first_down), "an answer with the state again after the restart")
            back = next(i for i in range(first_down, len(answers)) if answers[i]["state_available"])
            wait_for(lambda: len(answers) >= back + 30 or bad, "steady answers after the restart")
        finally:
            stop.set()
            scorer.join()
        errors = metric(base, STATE_ERRORS)
        ready = httpx.get(f"{base}/readyz", timeout=30).json()
    assert not bad, bad[0]
    down = [i for i, a in enumerate(answers) if not a["state_available"]]
    assert errors == len(down)  # every degraded answer counted once, nothing else
    assert answers[down[-1] + 1:] and all(a["state_available"] for a in answers[down[-1] + 1:])
    assert all(a["score"] is not None for a in answers)
    assert ready["status"] == "ok"
