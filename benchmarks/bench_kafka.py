"""The Kafka pipeline end to end on this machine: broker, producer and runner sharing its cores.

Four measurements, each on fresh 4-partition topics and a fresh consumer group:

1. **Saturation** — N generated transactions are produced first; then ``KafkaRunner`` is driven
   through its Python API (SQLite alert store and snapshots in a temp dir, ``stop_when_idle=2``)
   until it is idle, in a fresh spawned process per run so that a wedged client can be killed.
   Throughput counts from the first processed batch to the batch that makes it caught up (read ==
   N), from the runner's ``on_progress`` callback called after every loop iteration, so the group
   join, the partitions' first seek and the idle tail are excluded. Median of the repeats. The
   embedded runner over the same rows from a JSON Lines file (same JSON decode, validation,
   features, scoring and SQLite writes, no Kafka) gives the in-process baseline and the ratio. CPU
   time of the runner's process (its main thread + kafka-python's I/O threads) and of the broker
   over the same window show who is busy. One more run, not counted, is profiled with cProfile over the same window
   (main thread only: kafka-python's I/O thread is invisible to it; time the main thread spends
   waiting for it shows up under ``flush``/``poll``).

2. **Latency at fixed offered rates** — ``fraudstream run --source kafka --no-live-view
   --stop-when-idle 3`` runs as a separate process (the deployed shape: its own interpreter and
   GIL) while this process produces at the rate with ``produce_rows(..., rate=R)``. Two warm-up
   messages per partition go first and are waited for, so the group join and the partitions' first
   seek are not counted; only the paced messages are. Latency is measured from outside, without
   touching the runner: for each transaction, the CreateTime of its verdict on ``<topic>.scored``
   minus the CreateTime of its source message. The source timestamp is stamped by kafka-python when
   this process calls ``send()``; the verdict's when the runner calls ``send()`` for it, which it
   does right after the batch's alert-store write has committed — so the figure is produce call →
   alert store committed (plus the runner's send loop up to that verdict; the broker ack and the
   offset commit that follow are not included). Same clock (one machine), millisecond resolution.
   The runner's own p99 (Kafka record timestamp → after acks and offset commit, warm-up included)
   is parsed from its summary line as a cross-check. "Producer kept up" compares the rate the
   broker's timestamps show with the offered rate; the CPU used by the runner, the broker and this
   (producing) process while producing shows what the two cores were busy with.

3. **Catch-up** — a runner processes a first slice and stops (state snapshotted, offsets
   committed); with no runner, the benchmark produces at 1,000/s for 60 s (10 s with --quick);
   then the runner process is started again with the same group and state directory. Reported: the
   time from launching it to zero lag (committed offsets == end offsets, polled every 0.1 s), its
   start-up share (launch → first verdict), and the catch-up rate, overall and over the processing
   span given by the verdicts' timestamps.

Not pinned to one core (broker, producer and runner need them all). The machine may be shared,
so each measurement window records the CPU used (in % of one core) by the runner, the broker, the
producing process and ``other`` processes (the whole machine's busy time from /proc/stat less
those), and each phase the 1-minute load average: a large ``other`` means the figure is pessimistic.
A runner that makes no progress for STALL_S (60 s) with work left is stopped and the stall is
reported under ``stalls`` (a saturation run is then retried). Writes benchmarks/results/kafka.json.

    .venv/bin/python benchmarks/bench_kafka.py [--quick] [--bootstrap HOST:PORT]

Without --bootstrap, ``scripts/services/kafka start`` provides the broker (and ``stop`` stops it at
the end only if it was not running before). The topics created are deleted at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import median_of, timed, write_results  # noqa: E402

import msgspec  # noqa: E402

from fraudstream.model.bundle import save_bundle  # noqa: E402
from fraudstream.model.schema import validate  # noqa: E402
from fraudstream.model.train import feature_matrix, train_bundle  # noqa: E402
from fraudstream.services.kafka.producer import encode_row, make_producer, produce_rows  # noqa: E402
from fraudstream.services.kafka.settings import KafkaSettings  # noqa: E402
from fraudstream.services.kafka.topics import KafkaUnavailable, admin_client, ensure_topic  # noqa: E402
from fraudstream.services.runners.embedded import EmbeddedRunner  # noqa: E402
from fraudstream.services.runners.kafka import KafkaRunner, KafkaTopics  # noqa: E402
from fraudstream.services.runners.snapshots import SnapshotDir  # noqa: E402
from fraudstream.services.sources.file_source import FileSource  # noqa: E402
from fraudstream.services.sources.generator import GeneratorConfig, generate, write_transactions  # noqa: E402
from fraudstream.services.stores.alerts.sqlite import SqliteAlertStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "services" / "kafka"
BIN = Path(sys.executable).parent / "fraudstream"
PARTITIONS = 4
WARMUP_PER_PARTITION = 2  # messages per partition before a paced run: group joined, every partition initialised
PRIME = 2_000  # messages the catch-up runner processes before it is stopped
TICK = os.sysconf("SC_CLK_TCK")
STALL_S = 60.0  # no progress for this long with work left: the runner is declared stalled (RunnerStalled)
RUN_TIMEOUT_S = 900.0  # one saturation run, start to answer, at most
_decode = msgspec.json.Decoder().decode
_created: list[str] = []  # topics to delete at the end


# --------------------------------------------------------------------------- plumbing


def load() -> float:
    return round(os.getloadavg()[0], 2)


def broker(bootstrap: str | None) -> tuple[str | None, bool]:
    """``(bootstrap, started_here)``; ``(None, False)`` after saying why when there is no broker."""
    if bootstrap:
        return bootstrap, False
    if not SCRIPT.exists():
        print(f"skipped: no Kafka broker (no {SCRIPT.relative_to(ROOT)}; pass --bootstrap HOST:PORT)")
        return None, False
    status = subprocess.run([str(SCRIPT), "status", "--brokers", "1"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    if status.returncode == 0 and status.stdout.strip():
        return status.stdout.strip().splitlines()[-1], False
    done = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    if done.returncode != 0 or not done.stdout.strip():
        print(f"skipped: scripts/services/kafka start failed:\n{done.stderr.strip()[-2000:]}")
        return None, False
    return done.stdout.strip().splitlines()[-1], True


def broker_pid(bootstrap: str) -> int | None:
    """The local single broker's pid (for its CPU time), when that is the broker in use."""
    if bootstrap.strip() != "127.0.0.1:9092":
        return None
    var = Path(os.environ.get("KAFKA_VAR_DIR") or Path(os.environ.get("FRAUDSTREAM_VAR") or ROOT / "var" / "services") / "kafka")
    try:
        return int((var / "single" / "node-1" / "kafka.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (None if unknown)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine so far, all cores (from /proc/stat; None elsewhere)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / TICK


def fresh_topic(settings: KafkaSettings, label: str) -> str:
    topic = f"bench-kafka-{label}-{uuid.uuid4().hex[:8]}"
    ensure_topic(settings, topic, PARTITIONS, 1)
    _created.extend([topic, f"{topic}.scored", f"{topic}.dlq"])
    return topic


def quantiles_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def q(p: float) -> float:
        return float(ordered[min(len(ordered) - 1, int(p * len(ordered)))])

    return {"p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "max_ms": float(ordered[-1])}


def consume_all(settings: KafkaSettings, topic: str, timeout_s: float = 180) -> list[Any]:
    """Every record of ``topic`` from the beginning to its current end."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.client_kwargs(), enable_auto_commit=False, max_partition_fetch_bytes=8 << 20,
                             fetch_max_bytes=64 << 20, max_poll_records=50_000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def stamps_by_id(records: list[Any]) -> dict[str, int]:
    """``{transaction_id: timestamp_ms}`` of JSON messages (CreateTime, as the topics here are made)."""
    out: dict[str, int] = {}
    for rec in records:
        if rec.timestamp_type != 0:
            raise SystemExit(f"expected CreateTime timestamps, got type {rec.timestamp_type}")
        out[_decode(rec.value)["transaction_id"]] = rec.timestamp
    return out


class Offsets:
    """End offsets of a topic and a group's committed offsets on it, asked afresh each time."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(**settings.client_kwargs(), enable_auto_commit=False)
        self.admin = admin_client(settings)
        self.partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    def end(self) -> int:
        return sum(self.consumer.end_offsets(self.partitions).values())

    def committed(self, group: str) -> int:
        offsets = self.admin.list_group_offsets({group: None}).get(group, {})
        return sum(max(0, offsets[tp].offset) for tp in self.partitions if tp in offsets)

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


class RunnerStalled(RuntimeError):
    """A runner stopped making progress with work left (seen with kafka-python 3.0.12: after a rejoin
    right after the first assignment the consumer sends no fetch and no heartbeat, the broker expels
    it after the session timeout, and ``poll()`` keeps returning nothing while the loop spins a core)."""


class Runners:
    """``fraudstream run --source kafka`` child processes; whatever still runs at the end is stopped."""

    def __init__(self, settings: KafkaSettings, model: Path, tmp: Path) -> None:
        self.settings, self.model, self.tmp = settings, model, tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, topic: str, group: str, name: str, idle: float) -> subprocess.Popen:
        args = [
            str(BIN), "run", "--source", "kafka", "--model", str(self.model), "--bootstrap", self.settings.bootstrap,
            "--topic", topic, "--group", group, "--scored-topic", f"{topic}.scored", "--dlq-topic", f"{topic}.dlq",
            "--store", str(self.tmp / f"{name}.db"), "--state-dir", str(self.tmp / f"{name}-state"),
            "--no-live-view", "--stop-when-idle", str(idle),
        ]
        out = open(self.tmp / f"{name}.{len(self.procs)}.out", "w+")  # noqa: SIM115 (read back in finish)
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "COLUMNS": "200"})
        proc.output = out  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    @staticmethod
    def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
        """Wait for the runner to stop by itself (stop-when-idle); its exit code and output."""
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = Runners.terminate(proc)
        proc.output.seek(0)  # type: ignore[attr-defined]
        return code, proc.output.read()  # type: ignore[attr-defined]

    @staticmethod
    def terminate(proc: subprocess.Popen) -> int:
        """SIGTERM (the runner finishes its batch and leaves), SIGKILL if that takes over 30 s."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            Runners.terminate(proc)
            proc.output.close()  # type: ignore[attr-defined]


def crc32c_kind() -> str:
    """kafka-python checks (consumer) and computes (producer) a CRC-32C per record batch: in C with
    the optional ``crc32c`` package, else in pure Python — a large share of both sides' CPU."""
    from kafka.record import util

    return "C (crc32c package)" if getattr(util, "crc32c_c", None) is not None else "pure Python"


def runner_p99(output: str) -> float | None:
    match = re.search(r"p99 latency ([\d.,]+) ms", output)
    return float(match.group(1).replace(",", "")) if match else None


# --------------------------------------------------------------------------- 1. saturation

KEY_FUNCTIONS = (  # (path suffix, function): where one batch's time goes, cumulative
    ("runners/kafka.py", "_process"),
    ("consumer/group.py", "poll"),
    ("runners/kafka.py", "_process_partition"),
    ("model/schema.py", "validate"),
    ("model/scoring.py", "decide_batch"),
    ("producer/kafka.py", "send"),
    ("producer/kafka.py", "flush"),
    ("alerts/sqlite.py", "write"),
    ("runners/kafka.py", "_commit"),
    ("runners/kafka.py", "_record"),
    ("runners/kafka.py", "_update_lag"),
    ("runners/kafka.py", "_maybe_snapshot"),
)


# Card partitions finish at slightly different times; the last transactions wait for the others to be quiet.
# Shorter than the runner's default so that the wait barely counts in the saturation window.
SATURATION_QUIET_S = 0.5


def saturation_run(settings: KafkaSettings, bundle: Any, topic: str, n: int, tmp: Path, bpid: int | None,
                   profile: bool = False, stop_when_idle: float | None = 2.0) -> dict[str, Any]:
    """One in-process KafkaRunner over the pre-produced topic; rate from first batch to caught up."""
    run_id = uuid.uuid4().hex[:8]
    store = SqliteAlertStore(tmp / f"sat-{run_id}.db")
    marks: dict[str, Any] = {}
    profiler = cProfile.Profile() if profile else None

    last = {"read": -1, "at": time.monotonic()}

    def progress(stats: Any) -> None:
        read = stats.counters["read"]
        now = time.monotonic()
        if read != last["read"]:
            last.update(read=read, at=now)
        elif read < n and now - last["at"] > STALL_S:  # the loop turns, nothing comes: see RunnerStalled
            marks["stalled"] = read
            runner.stop()
        if read and "t0" not in marks:
            marks.update(t0=time.perf_counter(), r0=read, cpu0=cpu_seconds(None), broker0=cpu_seconds(bpid),
                         machine0=machine_cpu_seconds())
            if profiler is not None:
                profiler.enable()
        if stats.counters["scored"] >= n and "t1" not in marks:  # through both stages (card, then merchant)
            if profiler is not None:
                profiler.disable()
            marks.update(t1=time.perf_counter(), r1=read, cpu1=cpu_seconds(None), broker1=cpu_seconds(bpid),
                         machine1=machine_cpu_seconds())

    runner = KafkaRunner(settings, bundle, store, SnapshotDir(tmp / f"sat-{run_id}-state"), group=f"bench-kafka-sat-{run_id}",
                         topics=KafkaTopics(topic, f"{topic}.scored", f"{topic}.dlq"), stop_when_idle=stop_when_idle,
                         on_progress=progress, progress_seconds=0.0, quiet_s=SATURATION_QUIET_S)
    start = time.perf_counter()
    try:
        stats = runner.run()
    finally:
        if profiler is not None:
            profiler.disable()
        store.close()
    if "t1" not in marks and "stalled" not in marks:
        raise RuntimeError(f"the runner stopped at {stats.counters['read']:,} of {n:,} messages")
    if "t1" not in marks:
        raise RunnerStalled(f"in-process KafkaRunner made no progress for {STALL_S:.0f} s at {stats.counters['read']:,} "
                            f"of {n:,} messages (group {runner.group})")
    window = marks["t1"] - marks["t0"]
    result: dict[str, Any] = {
        "per_s": (marks["r1"] - marks["r0"]) / window,
        "window_s": window,
        "first_batch_after_s": marks["t0"] - start,  # group join + partition init + first batch
        "read": stats.counters["read"],
        "scored": stats.counters["scored"],
        "alerts": stats.counters["alerts"],
        "runner_cpu_pct": 100 * (marks["cpu1"] - marks["cpu0"]) / window,
    }
    cpu = cpu_shares({"runner": marks["cpu0"], "broker": marks["broker0"], "machine": marks["machine0"]},
                     {"runner": marks["cpu1"], "broker": marks["broker1"], "machine": marks["machine1"]}, window)
    result["broker_cpu_pct"], result["other_cpu_pct"] = cpu.get("broker"), cpu.get("other")
    if profiler is not None:
        result["profile"] = profile_figures(profiler, window)
    return result


def _saturation_child(conn: Any, bootstrap: str, model: str, topic: str, n: int, tmp: str, bpid: int | None,
                      profile: bool) -> None:
    """Entry point of the child process of :func:`saturation`: one run, its figures sent back (or the error)."""
    from fraudstream.model.bundle import load_bundle

    try:
        result = saturation_run(KafkaSettings(bootstrap=bootstrap), load_bundle(model), topic, n, Path(tmp), bpid, profile)
        conn.send(("ok", result))
    except RunnerStalled as error:
        conn.send(("stalled", str(error)))
    except BaseException as error:  # noqa: BLE001 - reported by the parent
        conn.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        conn.close()


def saturation(settings: KafkaSettings, model: Path, topic: str, n: int, tmp: Path, bpid: int | None,
               profile: bool = False, stalls: list[str] | None = None, attempts: int = 3) -> dict[str, Any]:
    """:func:`saturation_run` in a fresh (spawned) process, so that a stalled client can be killed; retried
    after a stall (each stall is appended to ``stalls``)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for _ in range(attempts):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_saturation_child, args=(child, settings.bootstrap, str(model), topic, n, str(tmp), bpid, profile))
        proc.start()
        child.close()
        status, payload = "stalled", f"no answer from the saturation process within {RUN_TIMEOUT_S:.0f} s (killed)"
        if parent.poll(RUN_TIMEOUT_S):
            try:
                status, payload = parent.recv()
            except EOFError:
                proc.join(timeout=30)
                status, payload = "error", f"the saturation process died (exit code {proc.exitcode})"
        proc.join(timeout=30)
        if proc.is_alive():  # stuck in shutdown (closing a wedged client): it has answered or timed out
            proc.kill()
            proc.join()
        parent.close()
        if status == "ok":
            return payload
        if status == "error":
            raise SystemExit(f"saturation run failed: {payload}")
        print(f"(stalled: {payload}; trying again)", file=sys.stderr)
        if stalls is not None:
            stalls.append(payload)
    raise SystemExit(f"saturation runs stalled {attempts} times in a row")


def profile_figures(profiler: cProfile.Profile, window: float) -> dict[str, Any]:
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    top = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    cumulative = {}
    for suffix, name in KEY_FUNCTIONS:
        cum = sum(v[3] for (f, _, fn), v in entries.items() if fn == name and f.replace(os.sep, "/").endswith(suffix))
        calls = sum(v[1] for (f, _, fn), v in entries.items() if fn == name and f.replace(os.sep, "/").endswith(suffix))
        cumulative[f"{suffix}:{name}"] = {"share_of_window": cum / window, "calls": calls}
    return {
        "profiled_main_thread_s": total,
        "window_s": window,
        "top_tottime": [
            {"function": f"{'/'.join(Path(f).parts[-2:])}:{line}({fn})", "share": tt / total}
            for (f, line, fn), (_, _, tt, _, _) in top
        ],
        "cumulative": cumulative,
    }


def embedded_run(path: Path, bundle: Any, db: Path) -> None:
    db.unlink(missing_ok=True)
    runner = EmbeddedRunner(FileSource(path), bundle, SqliteAlertStore(db), batch_size=2000)
    runner.run()
    runner.store.close()


# --------------------------------------------------------------------------- 2. latency


def wait_for(fn: Any, target: int, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while fn() < target:
        if proc.poll() is not None:
            raise RunnerStalled(f"the runner exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            Runners.terminate(proc)
            raise RunnerStalled(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def drain(fn: Any, target: int, proc: subprocess.Popen) -> bool:
    """Wait until ``fn()`` reaches ``target`` and the runner exits by itself (stop-when-idle).

    False — and the runner terminated — if ``fn()`` stops moving for :data:`STALL_S` before that.
    """
    last, moved = -1, time.monotonic()
    while proc.poll() is None:
        value = fn()
        now = time.monotonic()
        if value != last:
            last, moved = value, now
        if value >= target:
            if now - moved > STALL_S:  # done, but not exiting: stop it
                Runners.terminate(proc)
            time.sleep(0.2)
            continue
        if now - moved > STALL_S:
            Runners.terminate(proc)
            return False
        time.sleep(0.2)
    return fn() >= target


def cpu_shares(before: dict[str, float | None], after: dict[str, float | None], wall: float) -> dict[str, float | None]:
    """Percent of one core used by each, over ``wall`` seconds; ``other`` = the machine less the named ones."""
    shares = {name: None if after[name] is None or before[name] is None else 100 * (after[name] - before[name]) / wall
              for name in after}
    if shares.get("machine") is not None and all(v is not None for v in shares.values()):
        shares["other"] = max(0.0, shares["machine"] - sum(v for k, v in shares.items() if k != "machine"))
    return shares


def warm_up_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:data:`WARMUP_PER_PARTITION` rows for each partition (by kafka-python's key hash), and the others.

    Few, so that the runner's own latency figure (which counts them, and they wait for the group
    join and the partitions' first seek) is hardly moved by them at its 99th percentile.
    """
    from kafka.partitioner.default import murmur2

    taken: dict[int, int] = {}
    warm: list[int] = []
    for index, row in enumerate(rows):
        p = (murmur2(encode_row(row)[0]) & 0x7FFFFFFF) % PARTITIONS
        if taken.get(p, 0) < WARMUP_PER_PARTITION:
            taken[p] = taken.get(p, 0) + 1
            warm.append(index)
            if len(warm) == WARMUP_PER_PARTITION * PARTITIONS:
                break
    chosen = set(warm)
    return [rows[i] for i in warm], [r for i, r in enumerate(rows) if i not in chosen]


def latency_at(settings: KafkaSettings, runners: Runners, rows: list[dict[str, Any]], rate: int, seconds: float,
               bpid: int | None) -> dict[str, Any]:
    topic = fresh_topic(settings, f"lat{rate}")
    ensure_topic(settings, f"{topic}.scored", PARTITIONS, 1)  # made here so its end offsets can be watched
    warm, rest = warm_up_rows(rows)
    paced = rest[: int(rate * seconds)]
    if len(paced) < int(rate * seconds):
        raise SystemExit(f"not enough rows for {rate}/s × {seconds} s")
    load_before = load()
    proc = runners.start(topic, f"bench-kafka-lat-{uuid.uuid4().hex[:8]}", f"lat{rate}", idle=3)
    offsets = Offsets(settings, f"{topic}.scored")
    try:
        producer = make_producer(settings)
        try:
            produce_rows(warm, settings, topic, producer=producer)
            wait_for(offsets.end, len(warm), proc, 180, "the warm-up verdicts")
            cpu0 = {name: cpu_seconds(pid) for name, pid in (("runner", proc.pid), ("broker", bpid), ("producer", None))}
            cpu0["machine"] = machine_cpu_seconds()
            t0 = time.perf_counter()
            sent = produce_rows(paced, settings, topic, rate=rate, producer=producer)
            wall = time.perf_counter() - t0
            cpu = {name: cpu_seconds(pid) for name, pid in (("runner", proc.pid), ("broker", bpid), ("producer", None))}
            cpu["machine"] = machine_cpu_seconds()
        finally:
            producer.close()
        complete = drain(offsets.end, len(warm) + len(paced), proc)
    finally:
        offsets.close()
    code, output = Runners.finish(proc, timeout=60)
    if sent.failed:
        raise SystemExit(f"{sent.failed:,} messages failed: {sent.describe_errors()}")
    ids = [r["transaction_id"] for r in paced]
    source = stamps_by_id(consume_all(settings, topic))
    scored = stamps_by_id(consume_all(settings, f"{topic}.scored"))
    latencies = [scored[i] - source[i] for i in ids if i in scored]
    produced = sorted(source[i] for i in ids)
    span_s = (produced[-1] - produced[0]) / 1000
    broker_rate = (len(produced) - 1) / span_s if span_s > 0 else 0.0
    tenth = max(1, len(ids) // 10)
    order = sorted((source[i], i) for i in ids if i in scored)  # in produce order
    first = statistics.median(scored[i] - t for t, i in order[:tenth]) if order else None
    last = statistics.median(scored[i] - t for t, i in order[-tenth:]) if order else None
    if not latencies:
        raise RunnerStalled(f"no verdict for the {len(ids):,} paced messages (runner exit {code}):\n{output[-1500:]}")
    return {
        "offered_per_s": rate,
        "stalled": not complete,  # the runner stopped making progress: the figures cover what it did
        "messages": len(ids),
        "producer_achieved_per_s": sent.rate(),
        "broker_seen_per_s": broker_rate,
        "producer_kept_up": broker_rate >= 0.97 * rate,
        "verdicts_matched": len(latencies),
        "missing_verdicts": len(ids) - len(latencies),
        **quantiles_ms(latencies),
        "p50_first_tenth_ms": first,
        "p50_last_tenth_ms": last,
        "cpu_pct_while_producing": cpu_shares(cpu0, cpu, wall),
        "runner_exit": code,
        "runner_reported_p99_ms": runner_p99(output),
        "load_avg_1m_before": load_before,
        "load_avg_1m_after": load(),
    }


# --------------------------------------------------------------------------- 3. catch-up


def catch_up(settings: KafkaSettings, runners: Runners, rows: list[dict[str, Any]], seconds: float, bpid: int | None,
             rate: int = 1_000) -> dict[str, Any]:
    topic = fresh_topic(settings, "catchup")
    group = f"bench-kafka-catchup-{uuid.uuid4().hex[:8]}"
    prime, backlog = rows[:PRIME], rows[PRIME : PRIME + int(rate * seconds)]
    produce_rows(prime, settings, topic)
    code, output = Runners.finish(runners.start(topic, group, "catchup", idle=2), timeout=120)
    if code != 0:
        raise RunnerStalled(f"the first catch-up runner failed or stalled (exit {code}):\n{output[-1500:]}")
    sent = produce_rows(backlog, settings, topic, rate=rate)  # no runner now: the backlog builds up
    if sent.failed:
        raise SystemExit(f"{sent.failed:,} messages failed: {sent.describe_errors()}")
    offsets = Offsets(settings, topic)
    try:
        end = offsets.end()
        base = offsets.committed(group)
        load_before = load()
        launched = time.time()
        proc = runners.start(topic, group, "catchup", idle=3)
        cpu0 = {"runner": 0.0, "broker": cpu_seconds(bpid), "machine": machine_cpu_seconds()}
        first_commit = zero = None
        last, moved = base, time.time()
        while zero is None:
            committed = offsets.committed(group)
            now = time.time()
            if committed > base and first_commit is None:
                first_commit = now
            if committed != last:
                last, moved = committed, now
            if committed >= end:
                zero = now
                cpu = {"runner": cpu_seconds(proc.pid), "broker": cpu_seconds(bpid), "machine": machine_cpu_seconds()}
            elif proc.poll() is not None or now - moved > STALL_S:
                Runners.terminate(proc)
                raise RunnerStalled(f"the catch-up runner exited or made no progress for {STALL_S:.0f} s "
                                    f"at {committed - base:,} of {end - base:,} messages")
            else:
                time.sleep(0.1)
    finally:
        offsets.close()
    code, output = Runners.finish(proc, timeout=300)
    ids = {r["transaction_id"] for r in backlog}
    verdicts = sorted(t for i, t in stamps_by_id(consume_all(settings, f"{topic}.scored")).items() if i in ids)
    span_s = (verdicts[-1] - verdicts[0]) / 1000
    to_zero = zero - launched
    return {
        "produced_per_s": rate,
        "produce_seconds": seconds,
        "backlog": end - base,
        "verdicts": len(verdicts),
        "time_to_zero_lag_s": to_zero,
        "startup_s": verdicts[0] / 1000 - launched,  # launch → first verdict: interpreter, model, group join
        "first_commit_after_s": None if first_commit is None else first_commit - launched,
        "catch_up_per_s": (end - base) / to_zero,
        "processing_span_s": span_s,
        "processing_per_s": (len(verdicts) - 1) / span_s if span_s > 0 else 0.0,
        "cpu_pct_launch_to_zero_lag": cpu_shares(cpu0, cpu, to_zero),
        "runner_exit": code,
        "load_avg_1m_before": load_before,
        "load_avg_1m_after": load(),
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, short phases, fewer rates: a smoke run")
    parser.add_argument("--bootstrap", help="an existing broker HOST:PORT (default: scripts/services/kafka)")
    args = parser.parse_args()
    bootstrap, started_here = broker(args.bootstrap)
    if bootstrap is None:
        return
    settings = KafkaSettings(bootstrap=bootstrap)
    try:
        admin_client(settings).close()
    except KafkaUnavailable as error:
        print(f"skipped: {error}")
        return
    quick = args.quick
    cards, days, repeats = (1_000, 10, 1) if quick else (5_000, 10, 3)
    rates = (1_000, 5_000) if quick else (1_000, 5_000, 10_000, 20_000)
    rate_seconds = 3.0 if quick else 10.0
    catch_seconds = 10.0 if quick else 60.0
    tmp = Path(tempfile.mkdtemp(prefix="fraudstream-bench-kafka-"))
    runners: Runners | None = None
    bpid = broker_pid(bootstrap)
    figures: dict[str, Any] = {"bootstrap": bootstrap, "partitions": PARTITIONS, "quick": quick,
                               "load_avg_1m_at_start": load(), "broker_started_here": started_here,
                               "kafka_python_crc32c": crc32c_kind()}
    try:
        rows = list(generate(GeneratorConfig(cards=cards, days=days, seed=3)))
        n = len(rows)
        bundle = train_bundle(feature_matrix(validate(r) for r in rows), created_at="bench")
        model = save_bundle(bundle, tmp / "model")
        runners = Runners(settings, model, tmp)

        # 1. saturation
        topic = fresh_topic(settings, "sat")
        sent = produce_rows(rows, settings, topic)
        if sent.failed:
            raise SystemExit(f"{sent.failed:,} messages failed: {sent.describe_errors()}")
        sat_runs: list[dict[str, Any]] = []
        stalls: list[str] = figures.setdefault("stalls", [])
        median, _ = median_of(
            repeats, lambda: sat_runs.append(saturation(settings, model, topic, n, tmp, bpid, stalls=stalls)) or sat_runs[-1]["per_s"]
        )
        jsonl = tmp / "stream.jsonl"
        write_transactions(rows, jsonl)
        emb_median, emb_runs = median_of(repeats, lambda: n / timed(lambda: embedded_run(jsonl, bundle, tmp / "emb.db")))
        profiled = saturation(settings, model, topic, n, tmp, bpid, profile=True, stalls=stalls)
        figures["saturation"] = {
            "messages": n, "cards": cards, "days": days, "repeats": repeats,
            "preproduce_per_s": sent.rate(),
            "kafka_per_s": median,
            "kafka_runs": sat_runs,
            "embedded_jsonl_per_s": emb_median,
            "embedded_runs": emb_runs,
            "kafka_vs_embedded": median / emb_median,
            "profiled_run_per_s": profiled["per_s"],
            "profile": profiled["profile"],
            "target_per_s": 50_000,
            "target_met": median >= 50_000,
        }

        # 2. latency at fixed offered rates, 3. catch-up
        stream = list(generate(GeneratorConfig(cards=cards, days=10 if quick else 21, seed=4)))
        figures["latency"] = {}
        for rate in rates:
            try:
                figures["latency"][str(rate)] = latency_at(settings, runners, stream, rate, rate_seconds, bpid)
            except RunnerStalled as error:
                figures["latency"][str(rate)] = {"offered_per_s": rate, "error": str(error)}
                stalls.append(f"latency at {rate}/s: {error}")
        at_10k = figures["latency"].get("10000", {})
        figures["latency_target"] = {"rate_per_s": 10_000, "p99_ms_max": 500,
                                     "met": at_10k["p99_ms"] <= 500 if "p99_ms" in at_10k else None}
        try:
            figures["catch_up"] = catch_up(settings, runners, stream, catch_seconds, bpid)
        except RunnerStalled as error:
            figures["catch_up"] = {"error": str(error)}
            stalls.append(f"catch-up: {error}")
        figures["load_avg_1m_at_end"] = load()
    finally:
        if runners is not None:
            runners.stop_all()
        try:
            admin = admin_client(settings)
            try:
                existing = set(admin.list_topics())
                admin.delete_topics([t for t in _created if t in existing], raise_errors=False)
            finally:
                admin.close()
        except Exception as error:  # cleanup only: the figures stand
            print(f"(could not delete the benchmark topics: {error})", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        if started_here:
            subprocess.run([str(SCRIPT), "stop", "--brokers", "1"], capture_output=True, timeout=120, cwd=ROOT)

    path = write_results("kafka", figures)
    report(figures)
    print(f"→ {path}")


def pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f} %"


def report(f: dict[str, Any]) -> None:
    s = f["saturation"]
    print(f"Kafka pipeline at {f['bootstrap']}, {f['partitions']} partitions (load avg {f['load_avg_1m_at_start']} at start; "
          f"kafka-python CRC-32C: {f['kafka_python_crc32c']})")
    runs = ", ".join(f"{r['per_s']:,.0f}" for r in s["kafka_runs"])
    print(f"saturation, {s['messages']:,} messages, median of {s['repeats']}:")
    print(f"  KafkaRunner in-process:  {s['kafka_per_s']:>9,.0f} transactions/s ({runs}); target 50,000: "
          f"{'met' if s['target_met'] else 'NOT met'}")
    for r in s["kafka_runs"]:
        print(f"    run at {r['per_s']:,.0f}/s: CPU (of one core, in the window) runner {r['runner_cpu_pct']:.0f} %, "
              f"broker {pct(r['broker_cpu_pct'])}, other processes {pct(r['other_cpu_pct'])}; "
              f"first batch {r['first_batch_after_s']:.1f} s after start")
    print(f"  embedded, JSON Lines:    {s['embedded_jsonl_per_s']:>9,.0f} transactions/s → Kafka is {s['kafka_vs_embedded']:.2f}× embedded")
    print(f"  (pre-producing them: {s['preproduce_per_s']:,.0f} msgs/s)")
    p = s["profile"]
    print(f"  where the runner's main thread spends the window (profiled run: {s['profiled_run_per_s']:,.0f}/s), cumulative:")
    for name, entry in p["cumulative"].items():
        print(f"    {entry['share_of_window']:6.1%}  {name} ({entry['calls']:,} calls)")
    print("  top functions by own time:")
    for entry in p["top_tottime"][:12]:
        print(f"    {entry['share']:6.1%}  {entry['function']}")
    print("latency, produce call → verdict sent after the alert-store commit (runner in its own process):")
    for rate, m in f["latency"].items():
        if "error" in m:
            print(f"  offered {int(rate):>6,}/s: FAILED: {m['error']}")
            continue
        print(f"  offered {int(rate):>6,}/s: producer {m['producer_achieved_per_s']:>7,.0f}/s (broker saw {m['broker_seen_per_s']:,.0f}/s, "
              f"{'kept up' if m['producer_kept_up'] else 'did NOT keep up'}); p50 {m['p50_ms']:,.0f} ms, p99 {m['p99_ms']:,.0f} ms, "
              f"max {m['max_ms']:,.0f} ms; p50 first/last tenth {m['p50_first_tenth_ms']:,.0f}/{m['p50_last_tenth_ms']:,.0f} ms; "
              f"runner's own p99 {m['runner_reported_p99_ms']} ms; missing {m['missing_verdicts']}"
              + (" — the runner STALLED" if m["stalled"] else ""))
        cpu = ", ".join(f"{k} {pct(v)}" for k, v in m["cpu_pct_while_producing"].items())
        print(f"      CPU while producing (of one core): {cpu}")
    for stall in f.get("stalls", []):
        print(f"  stall: {stall}")
    t = f["latency_target"]
    print(f"  target p99 ≤ 500 ms at 10,000/s: {'not measured' if t['met'] is None else 'met' if t['met'] else 'NOT met'}")
    c = f["catch_up"]
    if "error" in c:
        print(f"catch-up: FAILED: {c['error']}")
        return
    print(f"catch-up: {c['backlog']:,} messages built up over {c['produce_seconds']:.0f} s at {c['produced_per_s']:,}/s; "
          f"zero lag {c['time_to_zero_lag_s']:.1f} s after launch (start-up {c['startup_s']:.1f} s) → "
          f"{c['catch_up_per_s']:,.0f} msgs/s overall, {c['processing_per_s']:,.0f} msgs/s while processing")
    cpu = ", ".join(f"{k} {pct(v)}" for k, v in c["cpu_pct_launch_to_zero_lag"].items())
    print(f"      CPU from launch to zero lag (of one core): {cpu}")


if __name__ == "__main__":
    main()
