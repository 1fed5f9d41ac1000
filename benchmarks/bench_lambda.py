"""Benchmark the scoring API's Lambda package under the AWS Lambda Runtime Interface Emulator: cold start
(init) and warm invocations of ``POST /v1/score``.

Builds the zip with ``fraudstream package-lambda``'s builder (Python 3.12, the default runtime), unpacks it
as Lambda's /var/task and runs it with a Python 3.12 that sees only the zip and the runtime client
(``python -S``). Each cold start is a fresh emulator and runtime: the init duration is the emulator's own
``INIT REPORT``, plus the client's time to the first answer and the CPU time the runtime process used
until then (init and one invocation: what the init would take on an otherwise idle machine). Warm invocations score distinct transactions
over a few hundred cards, one at a time: the emulator's per-invocation ``Duration`` (what Lambda bills)
and the client's round trip through the emulator. Targets: init <= 1 s, warm p99 <= 10 ms.

    .venv/bin/python benchmarks/bench_lambda.py [--cold 5] [--warm 1000] [--model DIR]

Prints the figures and writes var/bench/lambda.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).parent), str(ROOT / "tests")]

from lambda_rie import api_event, build_rie, running, train_small_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from support import BASE, T0  # noqa: E402

from fraudstream.services.cli.package_lambda import cache_root  # noqa: E402
from fraudstream.services.packaging.lambda_zip import RUNTIMES, build, find_python, install_dependencies  # noqa: E402

OUT = ROOT / "var" / "bench" / "lambda.json"
KEY = "bench-lambda-key-0123456789"
TARGET_INIT_MS = 1000.0
TARGET_WARM_P99_MS = 10.0
console = Console()


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation, like numpy's default."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(percentile(values, 50), 3), "p99_ms": round(percentile(values, 99), 3),
            "max_ms": round(max(values), 3), "mean_ms": round(statistics.fmean(values), 3)}


def transaction(n: int) -> dict[str, Any]:
    return {**BASE, "transaction_id": f"bench-{n}", "card_id": f"card-{n % 300}", "merchant_id": f"m-{n % 40}",
            "amount": round(5 + (n * 7919) % 400 + (n % 13) / 10, 2), "timestamp": T0 + n * 1_000}


def prepare(work: Path, model: Path | None, python: str) -> tuple[Path, Path, Path, dict[str, Any]]:
    """Build and unpack the zip; return the task root, the Python to run it, the runtime client, the build report."""
    interpreter = find_python(python)
    if interpreter is None:
        raise SystemExit(f"no Python {python} on this machine (python{python} on PATH or pyenv's)")
    model = model or train_small_model(work)
    report = build(model, work / "function.zip", python=python, cache=cache_root())
    task = work / "task"
    with zipfile.ZipFile(report.path) as archive:
        archive.extractall(task)
    client = install_dependencies([f"awslambdaric=={importlib.metadata.version('awslambdaric')}"], RUNTIMES[python],
                                  cache_root())
    return task, interpreter, client, {"zipped_bytes": report.zipped_bytes, "unzipped_bytes": report.unzipped_bytes,
                                       "scorer": report.kernel, "bytecode": report.bytecode}


def measure(task: Path, interpreter: Path, client: Path, work: Path, cold: int, warm: int) -> dict[str, Any]:
    rie = build_rie()
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8",
           "PYTHONPATH": f"{task}:{client}", "LAMBDA_TASK_ROOT": str(task), "FRAUDSTREAM_API_KEYS": KEY,
           "FRAUDSTREAM_CARD_ID_KEY": "bench-card-id-key", "FRAUDSTREAM_STORE": f"sqlite://{work / 'alerts.db'}"}
    inits, firsts, init_cpu, durations, round_trips = [], [], [], [], []
    n = 0
    for run in range(cold):
        log = work / f"emulator-{run}.log"
        with running(rie, "lambda_function.lambda_handler", cwd=task, log=log, python=(str(interpreter), "-S"),
                     env=env) as emulator:
            start = time.perf_counter()
            status, reply = emulator.invoke(api_event("http-v2", "POST", "/v1/score", transaction(n), key=KEY))
            firsts.append((time.perf_counter() - start) * 1000)
            n += 1
            if status != 200 or reply.get("statusCode") != 200:
                raise SystemExit(f"the first invocation failed: {reply}\n{emulator.tail()}")
            inits += emulator.init_durations_ms()
            init_cpu.append(emulator.runtime_cpu_ms())
            if run == 0:
                reported = len(emulator.invoke_durations_ms())
                for _ in range(warm):
                    event = api_event("http-v2", "POST", "/v1/score", transaction(n), key=KEY)
                    n += 1
                    start = time.perf_counter()
                    status, reply = emulator.invoke(event)
                    round_trips.append((time.perf_counter() - start) * 1000)
                    if reply.get("statusCode") != 200:
                        raise SystemExit(f"a warm invocation failed: {reply}")
                deadline = time.monotonic() + 60
                while len(emulator.invoke_durations_ms()) < reported + warm and time.monotonic() < deadline:
                    time.sleep(0.05)  # the emulator logs each REPORT line just after answering
                durations = emulator.invoke_durations_ms()[reported:]
    return {"init": summary(inits), "init_cpu": summary(init_cpu), "first_invoke_client": summary(firsts),
            "warm_duration": summary(durations),
            "warm_round_trip_client": summary(round_trips)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=5, help="cold starts (fresh emulator and runtime each)")
    parser.add_argument("--warm", type=int, default=1000, help="warm invocations after the first cold start")
    parser.add_argument("--model", type=Path, help="model bundle (default: a small one trained here)")
    parser.add_argument("--python-version", default="3.12", choices=sorted(RUNTIMES))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-lambda."))
    try:
        with console.status("building and unpacking the Lambda zip"):
            task, interpreter, client, package = prepare(work, args.model, args.python_version)
        with console.status(f"{args.cold} cold starts and {args.warm} warm invocations under the emulator"):
            figures = measure(task, interpreter, client, work, args.cold, args.warm)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"benchmark": "lambda", "runtime": f"python{args.python_version}", "machine": platform.machine(),
              "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "package": package, **figures,
              "targets": {"init_ms": TARGET_INIT_MS, "warm_p99_ms": TARGET_WARM_P99_MS}}
    table = Table(title=f"Lambda under the emulator, python{args.python_version} x86_64 "
                        f"(load average {result['load_average_1m']} on {os.cpu_count()} CPUs)")
    for column in ("what", "n", "p50 ms", "p99 ms", "max ms", "target"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for name, label, target in (("init", "init (cold start, emulator)", f"<= {TARGET_INIT_MS:g}"),
                                ("init_cpu", "init + first invocation, CPU time", f"<= {TARGET_INIT_MS:g}"),
                                ("first_invoke_client", "first invocation (client, incl. init)", ""),
                                ("warm_duration", "warm invocation (emulator Duration)", f"p99 <= {TARGET_WARM_P99_MS:g}"),
                                ("warm_round_trip_client", "warm round trip (client)", "")):
        s = figures[name]
        table.add_row(label, str(s["n"]), f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", f"{s['max_ms']:.2f}", target)
    console.print(table)
    console.print(f"zip {package['zipped_bytes']:,} B, unzipped {package['unzipped_bytes']:,} B; scorer: {package['scorer']}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"→ {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
