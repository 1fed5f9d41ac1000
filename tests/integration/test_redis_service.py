"""scripts/services/redis runs a real Redis on 127.0.0.1 that works, and never mistakes another
process on its port for its own.

Each test gives the script its own var folder and a free port, so a Redis a developer already runs
through the script (var/services/redis, port 6379) is neither used nor disturbed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT, free_port, pid_alive, service

import redis  # the [api] extra; scripts/install installs it

pytestmark = pytest.mark.integration

SCRIPT = ROOT / "scripts" / "services" / "redis"
DEADLINE_S = 60


def run_script(command: str, port: int, var: Path) -> subprocess.CompletedProcess[str]:
    """Run the script from an unrelated directory (it must find the repository by itself)."""
    env = {**os.environ, "REDIS_PORT": str(port), "REDIS_VAR_DIR": str(var)}
    return subprocess.run([str(SCRIPT), command], cwd="/", env=env, capture_output=True, text=True, timeout=600)


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].strip() if lines else ""


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S} s: {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def redis_server() -> str:
    """The redis-server executable (installed by the script when missing)."""
    service("redis", "install")
    path = shutil.which("redis-server")
    assert path, "scripts/services/redis install left no redis-server on PATH"
    return path


@pytest.fixture
def var(tmp_path: Path, redis_server: str) -> Iterator[Path]:
    """A var folder for the script; whatever the test started there is stopped afterwards."""
    folder = tmp_path / "redis"
    yield folder
    pidfile = folder / "redis.pid"
    if pidfile.exists():
        port = int((folder / "port").read_text()) if (folder / "port").exists() else 0
        run_script("stop", port, folder)


def test_start_status_set_get_stop(var: Path) -> None:
    port = free_port()
    started = run_script("start", port, var)
    assert started.returncode == 0, started.stderr
    url = last_line(started.stdout)
    assert url == f"redis://127.0.0.1:{port}/0"
    pid = int((var / "redis.pid").read_text())

    status = run_script("status", port, var)
    assert status.returncode == 0, status.stdout + status.stderr
    assert last_line(status.stdout) == url

    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        assert client.set("card:test", "state-1")
        assert client.get("card:test") == b"state-1"
        info = client.info("server")
        assert info["process_id"] == pid  # the server that answers is the one the script started
        config = client.config_get("*")
        assert config["bind"] == "127.0.0.1"
        assert config["save"] == "" and config["appendonly"] == "no"  # a cache: no persistence
        assert int(config["maxmemory"]) > 0 and config["maxmemory-policy"] == "allkeys-lru"
    finally:
        client.close()

    again = run_script("start", port, var)  # idempotent: the same instance, not a second one
    assert again.returncode == 0, again.stderr
    assert last_line(again.stdout) == url
    assert int((var / "redis.pid").read_text()) == pid

    stopped = run_script("stop", port, var)
    assert stopped.returncode == 0, stopped.stderr
    assert not pid_alive(pid), "stop returned before the process exited"
    assert not port_open(port)
    after = run_script("status", port, var)
    assert after.returncode == 1
    assert "stopped" in after.stdout


@pytest.mark.parametrize("kind", ["redis", "plain-tcp"])
def test_foreign_listener_on_the_port_is_reported_and_left_alone(var: Path, tmp_path: Path, redis_server: str,
                                                                 kind: str) -> None:
    """A Redis started by someone else answers PING just like ours would: the script must still refuse it."""
    port = free_port()
    if kind == "redis":
        args = [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(tmp_path)]
    else:
        args = ["python3", "-c", "import socket, time\n"
                "s = socket.socket(); s.bind(('127.0.0.1', %d)); s.listen(); time.sleep(3600)" % port]
    foreign = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_open(port) or foreign.poll() is not None, f"the foreign listener on {port}")
        assert foreign.poll() is None, "the foreign listener exited"

        started = run_script("start", port, var)
        assert started.returncode != 0
        assert f"127.0.0.1:{port} is already in use by another process" in started.stderr
        assert not (var / "redis.pid").exists()

        status = run_script("status", port, var)
        assert status.returncode == 1
        assert "another process" in status.stdout

        stopped = run_script("stop", port, var)
        assert stopped.returncode == 0
        assert foreign.poll() is None, "the script stopped a process it did not start"
        assert port_open(port)
    finally:
        foreign.terminate()
        foreign.wait(timeout=DEADLINE_S)
