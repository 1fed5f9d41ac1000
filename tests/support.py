"""Helpers shared by the test suites (imported as ``support``): transaction factories, the CLI, services."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from fraudstream.model.schema import Transaction, validate

if TYPE_CHECKING:
    from playwright.sync_api import Page

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).with_name("fraudstream")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday
HOUR = 3_600_000

BASE: dict[str, Any] = {
    "transaction_id": "t",
    "card_id": "card-1",
    "merchant_id": "m-1",
    "amount": 20.0,
    "currency": "USD",
    "merchant_category": "grocery",
    "channel": "card_present",
    "country": "US",
    "card_lat": 40.7128,
    "card_lon": -74.0060,
    "merchant_lat": 40.7128,
    "merchant_lon": -74.0060,
}


def make_txn(n: int = 0, t_ms: int = T0, **fields: Any) -> Transaction:
    """A valid transaction with id ``t<n>`` at ``t_ms``; ``fields`` override the defaults."""
    return validate({**BASE, "transaction_id": f"t{n}", "timestamp": t_ms, **fields})


def service(name: str, *args: str, timeout: float = 600) -> str:
    """Run ``scripts/services/<name> <args>``; return its last stdout line (e.g. the address), or ""."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "services" / name), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/services/{name} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


SERVICE_DEADLINE_S = 180  # how long a condition on a real service may take on a loaded 2-core machine


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = SERVICE_DEADLINE_S) -> T:
    """Poll ``condition`` until it returns something truthy and return that; fail naming ``what`` after
    ``timeout`` seconds. The way tests wait for another process: on the condition, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
        time.sleep(0.1)


def topic_size(bootstrap: str, topic: str) -> int:
    """Messages in Kafka ``topic`` so far (the sum of its partitions' end offsets; 0 before it exists).

    Asks for the list of topics first: a consumer's metadata request for a missing topic would have the broker
    create it (``auto.create.topics.enable``) with one partition, before the producer under test creates it."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        if topic not in admin.list_topics():
            return 0
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return sum(consumer.end_offsets(partitions).values()) if partitions else 0
    finally:
        consumer.close()


def group_owners(bootstrap: str, group: str) -> dict[str, set[int]] | None:
    """The partitions each client (by ``client_id``: a member id changes when a client rejoins) owns in a stable
    consumer group; None while the group rebalances."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        info = admin.describe_groups([group])[group]
    finally:
        admin.close()
    if info.get("group_state") != "Stable":
        return None
    owners: dict[str, set[int]] = {}
    for member in info.get("members") or []:
        assignment = member.get("member_assignment") or {}
        owned = owners.setdefault(member["client_id"], set())
        owned.update(p for topic in assignment.get("assigned_partitions", []) for p in topic["partitions"])
    return owners


def consume_all(bootstrap: str, topic: str) -> list:
    """Every message of Kafka ``topic`` from the beginning to its current end, partition by partition."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        messages: list = []
        deadline = time.monotonic() + SERVICE_DEADLINE_S
        while any(consumer.position(tp) < end[tp] for tp in partitions) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                messages.extend(records)
        return messages
    finally:
        consumer.close()


# How the browser tests and benchmarks/bench_dashboard.py launch Debian's Chromium. The background-networking
# flags keep Chromium from calling home: this machine refuses any such traffic.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}

# Streamlit 1.67 marks its root: data-test-connection-state CONNECTED once the websocket is up, and
# data-test-script-state notRunning (after "initial", then "running") once a script or fragment run ended.
# After a click it still reads notRunning until the rerun starts: expect() the new content first.
STREAMLIT_IDLE = '[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]'


def wait_for_streamlit(page: Page, timeout_ms: float = 30_000) -> None:
    """Wait until the page's Streamlit app is connected and idle (no script run, no running indicator)."""
    page.locator(STREAMLIT_IDLE).wait_for(state="attached", timeout=timeout_ms)
    page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=timeout_ms)


# ---------------------------------------------------------------- processes serving HTTP

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
LOG_TAIL_CHARS = 4000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    """Poll Streamlit's health endpoint until it answers 200; fail with the log's tail if it never does."""
    from fraudstream.services.cli.dashboard import wait_healthy

    if wait_healthy(process, f"{url}/", START_TIMEOUT_S):
        return
    state = f"exited with {process.returncode}" if process.poll() is not None else f"not healthy after {START_TIMEOUT_S} s"
    pytest.fail(f"dashboard {state}; {log} ends with:\n{log.read_text(errors='replace')[-LOG_TAIL_CHARS:]}", pytrace=False)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the process's group (the CLI and the Streamlit server it runs); SIGKILL what is left after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and group_alive(process.pid):
        process.poll()  # reaps the CLI itself; the server, its child, is reaped by init once orphaned
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    """Whether any process is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def serving(args: list[str], url: str, log: Path) -> Iterator[subprocess.Popen]:
    """Run a command that serves ``url`` in its own process group (output to ``log``) until its health endpoint
    answers; stop the whole group when the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=log.parent, start_new_session=True)
    try:
        wait_until_healthy(url, process, log)
        yield process
    finally:
        stop_group(process)


def messy_copy(data: Path, target: Path) -> dict[str, int]:
    """``data`` rewritten the way real feeds arrive: retries, reused ids, rows out of order, impossible
    times and zero-amount card checks. Returns how many of each were put in."""
    with open(data, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    messy: list[dict[str, str]] = []
    later: dict[int, list[dict[str, str]]] = {}
    counts = {"retries": 0, "reused": 0, "impossible": 0}
    for i, row in enumerate(rows):
        messy.append(row)
        messy.extend(later.pop(i, []))
        if i % 29 == 3:  # a retry a few rows later (same id, same content; another delivery)
            later.setdefault(i + 4, []).append(dict(row))
            counts["retries"] += 1
        if i % 31 == 5:  # another transaction of the same card reusing the id
            later.setdefault(i + 9, []).append({**row, "amount": f"{float(row['amount']) + 17.25:.2f}"})
            counts["reused"] += 1
        if i % 97 == 11:
            messy.append({**row, "transaction_id": f"old-{i}", "timestamp": "1970-01-01T00:00:00Z"})
            messy.append({**row, "transaction_id": f"far-{i}", "timestamp": "9999-12-31T00:00:00Z"})
            counts["impossible"] += 2
        if i % 53 == 7:
            messy.append({**row, "transaction_id": f"check-{i}", "amount": "0.00"})
    for start in range(0, len(messy) - 12, 40):  # out of order: rows late by up to a dozen places
        block = messy[start : start + 12]
        messy[start : start + 12] = block[::-1]
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(messy)
    return counts



# Python source that makes the top-level packages in the set ``blocked`` unimportable (as if not installed);
# subprocess scripts define ``blocked`` and then run this first.
IMPORT_BLOCKER = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""
