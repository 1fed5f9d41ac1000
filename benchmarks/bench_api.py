"""The scoring API under load: open-loop latency at fixed rates, saturation throughput, and the per-request
cost of scikit-learn's IsolationForest for contrast.

Starts ``fraudstream serve`` (one worker, in-process state or ``--state redis://...``, in-memory alert store) on a free port and
drives ``POST /v1/score`` from a separate load-generating process: open loop (request *i* is due at
``t0 + i / rate`` whatever happened before, and its latency runs from when it was due, so a stall is
not hidden), over keep-alive connections with a lean HTTP/1.1 client. Then a closed loop with a few
connections gives the saturation throughput of the worker. Last, in this process: one transaction
through the pipeline core (intake + features + score, no HTTP) and scikit-learn's
``IsolationForest.score_samples`` on one row, each timed per call.

Targets (issue 11): p99 <= 5 ms at 1,000 requests/s on one worker; >= 3,000 requests/s per worker at
saturation. The machine is shared (2 cores): the 1-minute load average is printed with the figures.

    .venv/bin/python benchmarks/bench_api.py [--quick] [--rates 250,500,1000] [--seconds 10] [--state redis://HOST:PORT/DB]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).with_name("fraudstream")
KEY = "bench-key"
CONNECTIONS = 64  # open-loop connection pool (a request waits for a free one; its wait counts)


# --------------------------------------------------------------------------- the load generator (own process)


def request_bytes(body: bytes) -> bytes:
    return (b"POST /v1/score HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer " + KEY.encode() +
            b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
    """Send one request on a keep-alive connection and read its response; returns the status."""
    writer.write(payload)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def open_loop(port: int, bodies: list[bytes], rate: float) -> dict[str, Any]:
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2

    async def one(due: float, payload: bytes) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await exchange(*conn, payload)
            if status != 200:
                errors += 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            conn = await asyncio.open_connection("127.0.0.1", port)
        finally:
            latencies.append(loop.time() - due)
            pool.put_nowait(conn)

    tasks = []
    for i, body in enumerate(bodies):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, request_bytes(body))))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - t0
    return {"rate": rate, "sent": len(bodies), "achieved_per_s": round(len(bodies) / elapsed, 1), "errors": errors,
            **percentiles(latencies)}


async def closed_loop(port: int, bodies: list[bytes], connections: int) -> dict[str, Any]:
    queue = list(reversed(bodies))
    errors = 0
    latencies: list[float] = []
    loop = asyncio.get_running_loop()

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            payload = request_bytes(queue.pop())
            start = loop.time()
            if await exchange(reader, writer, payload) != 200:
                errors += 1
            latencies.append(loop.time() - start)
        writer.close()

    start = loop.time()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = loop.time() - start
    return {"connections": connections, "sent": len(bodies), "throughput_per_s": round(len(bodies) / elapsed, 1),
            "errors": errors, **percentiles(latencies)}


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "p99_9_ms": at(0.999), "max_ms": round(ordered[-1] * 1000, 3)}


def load_generator(argv: list[str]) -> None:
    """``--load-gen PORT MODE ARG BODIES.jsonl``: print one JSON line of figures."""
    port, mode, arg, path = int(argv[0]), argv[1], float(argv[2]), Path(argv[3])
    bodies = [line.encode() for line in path.read_text().splitlines() if line]
    if mode == "open":
        result = asyncio.run(open_loop(port, bodies, arg))
    else:
        result = asyncio.run(closed_loop(port, bodies, int(arg)))
    print(json.dumps(result))


# --------------------------------------------------------------------------- the benchmark


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def transactions(cards: int, days: int) -> list[dict[str, Any]]:
    from fraudstream.services.sources.generator import GeneratorConfig, generate

    return list(generate(GeneratorConfig(cards=cards, days=days, seed=17, start="2026-02-01T00:00:00+00:00")))


def serve(model: Path, work: Path, state: str = "memory") -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    port = free_port()
    env = {**os.environ, "FRAUDSTREAM_API_KEYS": KEY}
    process = subprocess.Popen([str(BIN), "serve", "--port", str(port), "--model", str(model), "--store", "memory://",
                                "--state", state],
                               cwd=work, env=env, stdout=open(work / "serve.log", "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"serve exited: {(work / 'serve.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process, port
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("serve did not get ready in 120 s")


def drive(port: int, mode: str, arg: float, rows: list[dict[str, Any]], tag: str, work: Path) -> dict[str, Any]:
    """Run the load generator in its own process over ``rows`` (fresh transaction ids tagged ``tag``)."""
    path = work / f"bodies-{tag}.jsonl"
    path.write_text("\n".join(json.dumps({**r, "transaction_id": f"{tag}-{r['transaction_id']}"}) for r in rows) + "\n")
    done = subprocess.run([sys.executable, __file__, "--load-gen", str(port), mode, str(arg), str(path)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far: what a request costs the worker, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_call(fn: Any, items: list[Any]) -> dict[str, float]:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return percentiles(times)


def in_process(bundle: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The same work without HTTP: intake + features + score, one transaction at a time; and sklearn's forest."""
    import numpy as np
    from sklearn.ensemble import IsolationForest

    from fraudstream.model.features.keyed import FeatureState
    from fraudstream.model.schema import validate
    from fraudstream.model.scoring import Scorer
    from fraudstream.model.train import feature_matrix
    from fraudstream.services.pipeline.core import Intake

    state = FeatureState()
    intake, scorer = Intake("bench", state), Scorer(bundle, state)
    core = per_call(lambda r: scorer.decide(intake.admit(0, r)), rows)
    X = feature_matrix([validate(r) for r in rows])
    forest = IsolationForest(n_estimators=100, random_state=0).fit(X)
    sk = per_call(lambda x: forest.score_samples(x.reshape(1, -1)), list(np.asarray(X)[:2000]))
    return {"core_per_transaction": core, "sklearn_isolation_forest_per_request": sk}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load-gen":
        load_generator(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seconds per rate")
    parser.add_argument("--rates", default="250,500,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--saturation-connections", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="default var/bench/api.json (api-redis.json with Redis)")
    parser.add_argument("--state", default="memory",
                        help="the state store serve uses: memory (in the worker) or a Redis URL (scripts/services/redis start "
                             "prints one; flushed first: use a Redis of its own)")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    redis = args.state.startswith("redis://")
    out = args.out or ROOT / "var" / "bench" / ("api-redis.json" if redis else "api.json")
    if redis:  # every run starts from empty card and merchant state, as with the in-process store
        import redis as redis_client

        redis_client.Redis.from_url(args.state).flushdb()
    rates = [float(r) for r in args.rates.split(",")]

    from fraudstream.model.bundle import save_bundle
    from fraudstream.model.schema import validate
    from fraudstream.model.train import feature_matrix, train_bundle

    history = transactions(cards=2000, days=30 if not args.quick else 10)
    bundle = train_bundle(feature_matrix([validate(r) for r in history]), created_at="bench")
    live = transactions(cards=2000, days=20)
    need = int(max(rates) * seconds)
    figures: dict[str, Any] = {"state": "redis" if args.state.startswith("redis://") else args.state, "seconds_per_rate": seconds, "load_1min_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        save_bundle(bundle, work / "model")
        process, port = serve(work / "model", work, args.state)
        try:
            drive(port, "closed", 4, live[:2000], "warm", work)  # warm the connections, the code paths, the state
            figures["open_loop"] = [drive(port, "open", rate, live[: int(rate * seconds)], f"r{int(rate)}", work)
                                    for rate in rates]
            before = cpu_seconds(process.pid)
            sat = drive(port, "closed", args.saturation_connections, live[: max(need, 20_000)], "sat", work)
            cpu_ms = (cpu_seconds(process.pid) - before) * 1000 / sat["sent"]
            sat["worker_cpu_ms_per_request"] = round(cpu_ms, 3)
            sat["capacity_per_dedicated_core_per_s"] = round(1000 / cpu_ms)
            figures["saturation"] = sat
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    figures.update(in_process(bundle, live[:20_000]))
    figures["load_1min_after"] = round(os.getloadavg()[0], 2)

    print(f"scoring API, one worker, {figures['state']} state (load average {figures['load_1min_before']} -> {figures['load_1min_after']} on {os.cpu_count()} cores)")
    print(f"{'rate/s':>8} {'achieved':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'errors':>7}")
    for row in figures["open_loop"]:
        print(f"{row['rate']:>8.0f} {row['achieved_per_s']:>9.1f} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['p99_9_ms']:>9.3f} {row['errors']:>7}")
    sat = figures["saturation"]
    print(f"saturation ({sat['connections']} connections): {sat['throughput_per_s']:,.0f} requests/s, p50 {sat['p50_ms']} ms, "
          f"errors {sat['errors']}; the worker spent {sat['worker_cpu_ms_per_request']} ms of CPU per request "
          f"(= {sat['capacity_per_dedicated_core_per_s']:,} requests/s on a core of its own)")
    core, sk = figures["core_per_transaction"], figures["sklearn_isolation_forest_per_request"]
    print(f"pipeline core, one transaction (no HTTP): p50 {core['p50_ms']} ms, p99 {core['p99_ms']} ms")
    print(f"scikit-learn IsolationForest.score_samples, one row: p50 {sk['p50_ms']} ms, p99 {sk['p99_ms']} ms")
    best = min(figures["open_loop"], key=lambda row: row["p50_ms"])
    print(f"-> one HTTP request end to end (p50 {best['p50_ms']} ms at {best['rate']:.0f}/s) is "
          f"{sk['p50_ms'] / best['p50_ms']:.1f}x faster than sklearn's forest alone on one row; "
          f"the core's own work {sk['p50_ms'] / core['p50_ms']:.0f}x")
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "api", "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "python": sys.version.split()[0], "cpus": os.cpu_count(), **figures}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
