"""A Lambda handler under the AWS Lambda Runtime Interface Emulator, for tests and benchmarks (imported as
``lambda_rie``): start it on free loopback ports, invoke it with API Gateway events, stop it.

The emulator (``scripts/services/lambda-rie build``) starts the runtime, ``python -m awslambdaric HANDLER``,
on the first invocation; that invocation therefore includes the handler module's init (the cold start).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import ROOT, free_port, service, stop_group

EVENTS = ROOT / "tests" / "fixtures" / "apigateway"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
START_TIMEOUT_S = 60
INVOKE_TIMEOUT_S = 180  # the first invocation also starts the runtime and runs the handler's init
SHAPES = ("rest-v1", "http-v2")


class EmulatorFailed(RuntimeError):
    """The emulator exited, never listened, or an invocation could not be made."""


def build_rie() -> str:
    """The emulator binary, built once and cached by version (a no-op when cached)."""
    path = service("lambda-rie", "build", timeout=1800)
    if not os.access(path, os.X_OK):
        raise EmulatorFailed(f"lambda-rie build printed {path!r}, which is not an executable")
    return path


@dataclass
class Emulator:
    """A running emulator: its invoke URL and log."""

    url: str
    process: subprocess.Popen
    log: Path

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def invoke(self, event: Mapping[str, Any], timeout: float = INVOKE_TIMEOUT_S) -> tuple[int, dict[str, Any]]:
        """POST one event; return the emulator's HTTP status and the JSON payload it answered."""
        request = urllib.request.Request(f"{self.url}{INVOKE_PATH}", data=json.dumps(event).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def init_durations_ms(self) -> list[float]:
        """The duration of each runtime init the emulator logged so far (one per cold start), in ms.

        From its ``INIT REPORT(durationMs: ...)`` lines: the ``Init Duration`` of its REPORT lines is not
        the init's (it says 0.04 ms for a 900 ms init)."""
        return [float(x) for x in re.findall(r"INIT REPORT\(durationMs: ([0-9.]+)\)", self.tail(10_000_000))]

    def runtime_cpu_ms(self) -> float:
        """CPU time (user + system) the runtime process (the emulator's child: python -m awslambdaric) has used so
        far, in ms: unlike wall time, it does not grow when other processes share the CPUs."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended meanwhile
            if int(fields[1]) == self.process.pid:  # ppid
                total += (int(fields[11]) + int(fields[12])) * 1000 / ticks  # utime + stime
        return total

    def invoke_durations_ms(self) -> list[float]:
        """The ``Duration`` of each invocation's REPORT line so far, in ms (the first includes the init)."""
        return [float(x) for x in re.findall(r"^REPORT .*?\tDuration: ([0-9.]+) ms", self.tail(10_000_000), re.MULTILINE)]


def _wait_listening(emulator: Emulator) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if emulator.process.poll() is not None:
            raise EmulatorFailed(f"the emulator exited with {emulator.process.returncode}:\n{emulator.tail()}")
        try:
            urllib.request.urlopen(f"{emulator.url}/", timeout=5).close()
            return
        except urllib.error.HTTPError:
            return  # 404 for /: it is listening
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise EmulatorFailed(f"the emulator did not listen on {emulator.url} within {START_TIMEOUT_S} s:\n{emulator.tail()}")
        time.sleep(0.1)


@contextmanager
def running(rie: str, handler: str, *, cwd: Path, log: Path, python: Sequence[str] = (sys.executable,),
            env: Mapping[str, str] | None = None) -> Iterator[Emulator]:
    """``handler`` (``module.function``) under the emulator, run by ``python -m awslambdaric`` from ``cwd``
    (Lambda's task root) with ``env``; stopped, with the runtime, when the block ends."""
    port = free_port()
    runtime_port = free_port()
    while runtime_port == port:
        runtime_port = free_port()
    environment = {**(os.environ if env is None else env), "AWS_LAMBDA_FUNCTION_NAME": "fraudstream-scoring"}
    environment.pop("AWS_LAMBDA_MAX_CONCURRENCY", None)  # it switches the emulator to another mode
    with log.open("wb") as out:
        process = subprocess.Popen(
            [rie, "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
             "--runtime-api-address", f"127.0.0.1:{runtime_port}", *python, "-m", "awslambdaric", handler],
            cwd=cwd, env=environment, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    emulator = Emulator(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_listening(emulator)
        yield emulator
    finally:
        stop_group(process)


def api_event(shape: str, method: str, path: str, body: Any = None, *, key: str | None = None) -> dict[str, Any]:
    """A real API Gateway event (tests/fixtures/apigateway/SHAPE.json) for ``method path`` with a JSON ``body``
    (a str is sent as it is) and, when ``key`` is given, ``Authorization: Bearer KEY``."""
    event = copy.deepcopy(json.loads((EVENTS / f"{shape}.json").read_text()))
    text = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    event["body"] = text
    event["queryStringParameters"] = None
    if shape == "http-v2":
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
        event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
        event["rawQueryString"] = ""
        headers = event["headers"]
        headers["content-length"] = str(len((text or "").encode()))
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
    else:
        event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = path
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
        event["multiValueQueryStringParameters"] = None
        if key is not None:
            event["headers"]["Authorization"] = f"Bearer {key}"
            event["multiValueHeaders"]["Authorization"] = [f"Bearer {key}"]
    return event


def train_small_model(root: Path) -> Path:
    """A small model bundle made by the CLI (generate, then train): what a deployment would ship."""
    from support import BIN

    for args in (["generate", "--out", root / "history.csv", "--cards", "200", "--days", "3", "--seed", "2"],
                 ["train", "--data", root / "history.csv", "--model-out", root / "model"]):
        done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"fraudstream {args[0]} failed:\n{done.stderr}")
    return root / "model"
