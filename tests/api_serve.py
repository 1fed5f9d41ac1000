"""``fraudstream serve`` as a real process for the API's end-to-end tests (imported as ``api_serve``): start it
in a directory holding a model bundle ``m``, wait until it is ready, stop it with SIGTERM, read its metrics."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import BIN, free_port, wait_for

KEY = "e2e-scoring-key-5f1c"
AUTH = {"Authorization": f"Bearer {KEY}"}
STOP_DEADLINE_S = 60


def start(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``fraudstream serve --model m ARGS`` in ``workdir`` with the test key; its output in ``serve-N.log`` there."""
    log = open(workdir / f"serve-{len(list(workdir.glob('serve-*.log')))}.log", "wb")
    environ = {k: v for k, v in os.environ.items() if k != "PORT"}  # only the tests that mean it set $PORT
    environ.update({"FRAUDSTREAM_API_KEYS": KEY, **(env or {})})
    return subprocess.Popen([str(BIN), "serve", "--model", "m", *args], cwd=workdir, env=environ,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def ready(base: str, process: subprocess.Popen[bytes]) -> bool:
    """Whether the API at ``base`` answers ``/readyz`` with 200 (fails the test if the process ended)."""
    if process.poll() is not None:
        pytest.fail(f"fraudstream serve exited with {process.returncode}", pytrace=False)
    try:
        return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then the exit status (fails the test, after a SIGKILL, if it does not end in time)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("fraudstream serve did not stop on SIGTERM", pytrace=False)


@contextmanager
def serving(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """The base URL of a ready ``fraudstream serve ARGS`` on a free port (``env`` added to the test key's); it must
    stop cleanly after the block."""
    port = free_port()
    process = start(workdir, "--port", str(port), *args, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: ready(base, process), "the API to be ready")
        yield base
    finally:
        assert stop(process) == 0


def metric(base: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` on the API's ``/metrics`` (0 when absent)."""
    text = httpx.get(f"{base}/metrics", headers=AUTH, timeout=30).text
    for line in text.splitlines():
        sample, _, value = line.partition(" ")
        if sample == name:
            return float(value)
    return 0.0


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def as_json(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as a JSON transaction (empty cells are absent, as the file reader treats them)."""
    return {k: v for k, v in row.items() if v != ""}
