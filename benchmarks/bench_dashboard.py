"""Dashboard pages at 1,000,000 alerts: time to first render and refresh time of every page, Elasticsearch and SQLite.

Each store holds N alerts (default 1,000,000; ``--quick`` 50,000) from bench_alert_store.py's generator, 1,000 of
them labelled through ``set_label`` (so the Model page has precision figures and the Alert page a label history).
Every page of dashboard/views (``PAGES``) is measured two ways:

1. Server side, in this process, with Streamlit's ``AppTest`` on dashboard/app.py: a fresh AppTest opened at
   ``?page=<name>`` (``&id=`` a labelled alert for the Alert page) is a new session's first render; a second ``run()``
   of it is a refresh (the rerun any widget change causes; the Live page's 5-s fragment reruns only part of it).
   Every page is drawn once beforehand, unmeasured: that opens the store and loads the model bundle, which
   ``st.cache_resource`` then keeps for every session, as in a running server. Each store call a page makes is
   timed on the way (a thin wrapper around the store), which splits a page's time into store and drawing.
2. In Debian's headless Chromium (Playwright; ``--no-browser`` skips it) against ``fraudstream dashboard``: a new
   tab going to ``/?page=<name>`` until Streamlit is idle and every chart and table is drawn (Streamlit's scripts
   already in the browser cache; "connected" is the part before the app could ask for the page: Streamlit starting
   in the tab); then in that tab a rerun (key "r", as a widget change does), timed until its script run has ended,
   and a reload (going to the address again, Streamlit already compiled in the tab's process) until drawn.

Pages and stores are interleaved in each round (the stores take turns going first), so a change in the machine's
load hits them all alike.
Target: every page <= 1 s (median) at 1M alerts. Elasticsearch's shard request cache is switched off on the
benchmark's indices (with live writes every refresh empties it anyway): these are uncached figures. Not pinned
to one core (the engine and the browser need them); the 1-minute load average is recorded. Figures are medians,
p90 and max over ``--repeats`` runs (default 7, ``--quick`` 3). Writes benchmarks/results/dashboard.json.

    .venv/bin/python benchmarks/bench_dashboard.py [--quick] [--alerts N] [--repeats N] [--stores elasticsearch,sqlite] [--no-browser] [--reload]

The data is kept for the next run: var/bench/dashboard/alerts-N.db (SQLite), the Elasticsearch indices of prefix
``fsdash-N`` and the model bundle in var/bench/dashboard/model; it is reused when its counts still match, and
rebuilt with ``--reload``. The Elasticsearch node comes from ``scripts/services/elasticsearch start`` and is stopped
at the end only if this run started it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).parent), str(ROOT / "tests")]
import streamlit  # noqa: E402
from bench_alert_store import DAYS, HOUR, T0, generate, load, node  # noqa: E402
from common import write_results  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from streamlit.logger import set_log_level  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402
from support import CHROMIUM_ARGS, VIEWPORT, free_port, wait_for_streamlit  # noqa: E402

from fraudstream.dashboard import data  # noqa: E402
from fraudstream.dashboard.views import PAGES  # noqa: E402
from fraudstream.services.cli.dashboard import start, stop, wait_healthy  # noqa: E402
from fraudstream.services.stores.alerts import AlertStore, open_store  # noqa: E402
from fraudstream.services.stores.alerts.base import LABELS, AlertQuery  # noqa: E402
from fraudstream.services.stores.alerts.search_engine import SearchEngineAlertStore  # noqa: E402

APP = ROOT / "dashboard" / "app.py"
DATA = ROOT / "var" / "bench" / "dashboard"
MODEL = DATA / "model"
TARGET_MS = 1000
LABELLED = 1_000
LABEL_WEIGHTS = (3, 6, 1)  # fraud, legitimate, unsure
BATCH = 2000
DRAW_TIMEOUT_MS = 120_000
CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
PRESSES = 3  # now and then a key press starts no rerun: press again

# Drawn: a heading, no lazy-loaded element still a skeleton, a canvas or SVG in every chart and table.
DRAWN_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  return !!main && !!main.querySelector('[data-testid="stHeading"]') && !main.querySelector('[data-testid="stSkeleton"]')
    && [...main.querySelectorAll('[data-testid="stFullScreenFrame"]')].every(frame => frame.querySelector('canvas, svg'));
}"""
# Calls back with every script state the app takes, in order, until the callback returns true. (One batch of
# mutations can hold several changes: the state after each is the next one's old value, then the current one.)
ON_STATES_JS = """(callback => {
  const app = document.querySelector('[data-testid="stApp"]');
  const observer = new MutationObserver(records => {
    const states = [...records.slice(1).map(record => record.oldValue), app.getAttribute('data-test-script-state')];
    if (states.some(callback)) observer.disconnect();
  });
  observer.observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
})"""
# Arms window.__rerun: resolves with the ms from the next key press to the end of the rerun it requests
# (window.__rerunRequested says whether it did). A quick run may never show "running": React draws the last state.
ARM_RERUN_JS = """timeout => {
  window.__rerunRequested = false;
  window.__rerun = new Promise((resolve, reject) => {
    let pressed = null;
    document.addEventListener('keydown', () => { pressed = performance.now(); }, {once: true, capture: true});
    ON_STATES(state => {
      if (pressed === null) return false;
      if (state === 'rerunRequested' || state === 'running') window.__rerunRequested = true;
      else if (state === 'notRunning' && window.__rerunRequested) { resolve(performance.now() - pressed); return true; }
      return false;
    });
    setTimeout(() => reject(new Error(`no rerun ended within ${timeout} ms of pressing r`)), timeout);
  });
}""".replace("ON_STATES", ON_STATES_JS)


# --------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Subject:
    """A store the dashboard is measured over: its name, URL and the alert the Alert page opens."""

    store: str
    url: str
    alert_id: str


def train_model() -> None:
    """A small model bundle for the Model page, trained once into var/bench/dashboard/model."""
    if (MODEL / "bundle.json").exists():
        return
    fraudstream = Path(sys.executable).with_name("fraudstream")
    csv = DATA / "train.csv"
    for args in (["generate", "--out", str(csv), "--cards", "300", "--days", "5", "--seed", "1"],
                 ["train", "--data", str(csv), "--model-out", str(MODEL)]):
        subprocess.run([str(fraudstream), *args], check=True, capture_output=True, cwd=ROOT)


def labelled(n: int) -> int:
    """How many of the N alerts the benchmark labels."""
    return min(LABELLED, n)


def loaded(store: AlertStore, n: int) -> bool:
    """Whether the store holds the benchmark's data: N alerts, its labels, and aggregations that agree."""
    labels = sum(store.count_alerts(AlertQuery(label=label)) for label in LABELS)
    return store.count_alerts() == n and labels == labelled(n) and sum(store.count_by("hour", AlertQuery()).values()) == n


def fill(store: AlertStore, n: int) -> float:
    """Write the N alerts and label some of them; returns the seconds it took."""
    started = time.perf_counter()
    for alerts in generate(n, BATCH):
        store.write(alerts)
    rng = random.Random(5)
    picks = [(f"tx-{i:09d}", rng.choices(LABELS, LABEL_WEIGHTS)[0]) for i in rng.sample(range(n), labelled(n))]
    decided = T0 + DAYS * 24 * HOUR
    engine = isinstance(store, SearchEngineAlertStore)
    with ThreadPoolExecutor(8 if engine else 1) as pool:  # 8 analysts at once where the store allows it
        list(pool.map(lambda k: store.set_label(picks[k][0], picks[k][1], f"analyst-{k % 8}", decided + k * 60_000,
                                                "benchmark label"), range(len(picks))))
    if engine:
        store.refresh()
    return time.perf_counter() - started


def sqlite_data(n: int, reload: bool) -> tuple[str, float | None]:
    """``(store URL, seconds spent loading or None if reused)`` of the SQLite file with the N alerts."""
    path = DATA / f"alerts-{n}.db"
    url = f"sqlite://{path}"
    if path.exists() and not reload:
        try:
            store = open_store(url)
        except ValueError as error:  # made by another schema version
            print(f"sqlite: rebuilding {path.relative_to(ROOT)}: {error}", flush=True)
        else:
            with contextlib.closing(store):
                if loaded(store, n):
                    return url, None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    print(f"sqlite: loading {n:,} alerts into {path.relative_to(ROOT)}", flush=True)
    with contextlib.closing(open_store(url)) as store:
        return url, fill(store, n)


def elasticsearch_data(address: str, n: int, reload: bool) -> tuple[str, float | None, str]:
    """``(store URL, seconds spent loading or None if reused, engine version)`` of the ``fsdash-N`` indices."""
    url = f"elasticsearch://{address}?prefix=fsdash-{n}"
    store = open_store(url)
    assert isinstance(store, SearchEngineAlertStore)
    with contextlib.closing(store):
        seconds = None
        if reload or not loaded(store, n):
            print(f"elasticsearch: loading {n:,} alerts into prefix fsdash-{n}", flush=True)
            store.drop()
            seconds = fill(store, n)
        store._ok("PUT", f"/{store.alias}/_settings", {"index": {"requests.cache.enable": False}})
        _, info = store._ok("GET", "/_nodes/_local", params={"filter_path": "nodes.*.version"})
        (node_info,) = info["nodes"].values()
        return url, seconds, node_info["version"]


def labelled_alert(url: str) -> str:
    """The transaction id of the newest alert labelled fraud: the Alert page shows it with its label history."""
    with contextlib.closing(open_store(url)) as store:
        return store.search(AlertQuery(label="fraud"), sort="time", limit=1).alerts[0].transaction_id


# --------------------------------------------------------------------------- figures


def spread(seconds: list[float]) -> dict[str, float]:
    """Median, p90 and max in ms of some timings, and how many."""
    ms = sorted(s * 1000 for s in seconds)
    p90 = statistics.quantiles(ms, n=10, method="inclusive")[8] if len(ms) > 1 else ms[0]
    return {"median_ms": round(statistics.median(ms), 1), "p90_ms": round(p90, 1), "max_ms": round(ms[-1], 1), "runs": len(ms)}


def summary(query: AlertQuery) -> str:
    """The filters of a query in a few words, e.g. ``label=fraud 24h`` (``all`` for none)."""
    words = [f"{f.name}={getattr(query, f.name)}" if f.name == "label" else f.name
             for f in dataclasses.fields(query) if f.name not in ("start_ms", "end_ms") and getattr(query, f.name) is not None]
    if query.start_ms is not None and query.end_ms is not None:
        hours = (query.end_ms - query.start_ms) / HOUR
        words.append(f"{hours:g}h" if hours < 48 else f"{hours / 24:g}d")
    elif query.start_ms is not None or query.end_ms is not None:
        words.append("open time range")
    return " ".join(words) or "all"


def describe(name: str, args: tuple, kwargs: dict[str, Any]) -> str:
    """A store call as the attribution table shows it, e.g. ``histogram(score, label=fraud, 6 bins)``."""
    def word(value: Any) -> str:
        if isinstance(value, AlertQuery):
            return summary(value)
        if isinstance(value, (list, tuple)):
            return f"{len(value) - 1} bins"
        return str(value)

    words = [word(a) for a in args] + [f"{k}={word(v)}" for k, v in kwargs.items() if k not in ("cursor", "since_ms")]
    return f"{name}({', '.join(words)})"


class TimedStore:
    """An alert store that forwards every call and adds its duration to ``calls[description]``."""

    def __init__(self, store: AlertStore, calls: dict[str, list[float]]) -> None:
        self._store = store
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        """The store's attribute; methods come back timed."""
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def timed_call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._calls.setdefault(describe(name, args, kwargs), []).append(time.perf_counter() - started)

        return timed_call


@contextlib.contextmanager
def timed_store_calls() -> Iterator[dict[str, list[float]]]:
    """While in the block, the dashboard's store is a TimedStore recording into the yielded dict."""
    calls: dict[str, list[float]] = {}
    real = data.get_store
    with mock.patch.object(data, "get_store", lambda: TimedStore(real(), calls)):
        yield calls


# --------------------------------------------------------------------------- server side (AppTest)


def check_apptest(at: AppTest, page: str) -> None:
    """Fail loudly unless the run drew ``page`` (its header) without an exception, error or warning."""
    problems = [f"exception: {e.message}" for e in at.exception] + [f"error: {e.value}" for e in at.error]
    problems += [f"warning: {e.value}" for e in at.warning]
    if at.session_state["page"] != page:
        problems.append(f"drew page {at.session_state['page']!r}")
    if not at.header:
        problems.append("drew no header")
    if problems:
        raise RuntimeError(f"page {page!r}: " + "; ".join(problems))


def apptest_run(at: AppTest, page: str, calls: dict[str, list[float]]) -> tuple[float, dict[str, list[float]]]:
    """Seconds of one ``at.run()`` and the durations of each kind of store call made during it."""
    calls.clear()
    started = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - started
    check_apptest(at, page)
    return elapsed, dict(calls)


def session(subject: Subject, page: str) -> AppTest:
    """A new dashboard session over the subject's store, opened at ``?page=<page>`` (and ``&id=`` for Alert)."""
    os.environ[data.STORE_ENV] = subject.url  # read by the app at every run: both runs of a session see this store
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["page"] = page
    if page == "Alert":
        at.query_params["id"] = subject.alert_id
    return at


def turns(subjects: list[Subject], round_: int) -> list[Subject]:
    """The stores in the order of this round: each goes first in turn."""
    first = round_ % len(subjects)
    return subjects[first:] + subjects[:first]


def measure_server(subjects: list[Subject], repeats: int) -> dict[str, dict[str, Any]]:
    """First render and refresh of every page over every store through AppTest, with the time in store calls."""
    samples: dict[tuple[str, str], dict[str, list]] = {
        (subject.store, page): {"first": [], "refresh": [], "first_store": [], "refresh_store": [], "calls": []}
        for subject in subjects for page in PAGES}
    with timed_store_calls() as calls:
        for subject in subjects:  # warm-up: opens the store and the model bundle once, as a server's first session does
            for page in PAGES:
                apptest_run(session(subject, page), page, calls)
        for round_ in range(repeats):
            print(f"  server side, round {round_ + 1} of {repeats}", flush=True)
            for page in PAGES:
                for subject in turns(subjects, round_):
                    at = session(subject, page)
                    first, first_calls = apptest_run(at, page, calls)
                    refresh, refresh_calls = apptest_run(at, page, calls)
                    got = samples[subject.store, page]
                    got["first"].append(first)
                    got["refresh"].append(refresh)
                    got["first_store"].append(sum(map(sum, first_calls.values())))
                    got["refresh_store"].append(sum(map(sum, refresh_calls.values())))
                    got["calls"].append(first_calls)
    return {subject.store: {page: server_figures(samples[subject.store, page]) for page in PAGES} for subject in subjects}


def server_figures(got: dict[str, list]) -> dict[str, Any]:
    """One page's server-side figures over one store from its samples."""
    return {"first": spread(got["first"]), "refresh": spread(got["refresh"]), "store_first": spread(got["first_store"]),
            "store_refresh": spread(got["refresh_store"]), "store_calls_first": per_call(got["calls"])}


def per_call(runs: list[dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Each kind of store call of a page's first renders: how many per render and their median total ms, slowest first."""
    kinds = {call for run in runs for call in run}
    figures = {call: {"calls": max(len(run.get(call, [])) for run in runs),
                      "median_ms": round(statistics.median(sum(run.get(call, [])) for run in runs) * 1000, 1)} for call in kinds}
    return dict(sorted(figures.items(), key=lambda item: -item[1]["median_ms"]))


# --------------------------------------------------------------------------- browser


def drawn(tab: Page) -> None:
    """Wait until Streamlit is idle and the page fully drawn; fail loudly on an exception box."""
    wait_for_streamlit(tab, DRAW_TIMEOUT_MS)
    tab.wait_for_function(DRAWN_JS, timeout=DRAW_TIMEOUT_MS)
    boxes = tab.get_by_test_id("stException")
    if boxes.count():
        raise RuntimeError(f"{tab.url}: {boxes.first.inner_text()[:2000]}")


def browser_open(tab: Page, base: str, name: str, alert_id: str) -> tuple[float, float]:
    """Seconds from going to a page's address until the app is connected (Streamlit started), and until it is drawn."""
    params = {"page": name, **({"id": alert_id} if name == "Alert" else {})}
    started = time.perf_counter()
    tab.goto(f"{base}?{urlencode(params)}")
    tab.locator(CONNECTED).wait_for(state="attached", timeout=DRAW_TIMEOUT_MS)
    connected = time.perf_counter() - started
    drawn(tab)
    return connected, time.perf_counter() - started


def browser_rerun(tab: Page) -> float:
    """Seconds from pressing "r" (rerun) until the script run it started has ended; pressed again if ignored."""
    for _ in range(PRESSES):
        tab.evaluate(ARM_RERUN_JS, DRAW_TIMEOUT_MS)
        tab.keyboard.press("r")
        try:
            tab.wait_for_function("window.__rerunRequested", timeout=2000)
        except PlaywrightTimeout:
            continue
        elapsed = tab.evaluate("window.__rerun") / 1000
        drawn(tab)
        return elapsed
    raise RuntimeError(f"{tab.url}: pressing r {PRESSES} times requested no rerun")


@contextlib.contextmanager
def served(url: str, log: Path) -> Iterator[str]:
    """``fraudstream dashboard`` over the store at ``url`` on a free port while in the block; yields its address."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    server = start(url, MODEL, "127.0.0.1", port, log=log)
    try:
        if not wait_healthy(server, base):
            raise RuntimeError(f"the dashboard did not start; {log} ends with:\n{log.read_text(errors='replace')[-3000:]}")
        yield base
    finally:
        stop(server, patience_s=15)


def measure_browser(subjects: list[Subject], repeats: int) -> tuple[str, dict[str, dict[str, Any]]]:
    """Chromium's version, and first render, rerun and reload of every page over every store (a server for each)."""
    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("chromium is not on PATH: run scripts/install-browser, or pass --no-browser")
    samples: dict[tuple[str, str], dict[str, list[float]]] = {
        (subject.store, page): {"first": [], "first_connected": [], "reload": [], "refresh": []} for subject in subjects for page in PAGES}
    with contextlib.ExitStack() as stack:
        bases = {subject.store: stack.enter_context(served(subject.url, DATA / f"dashboard-{subject.store}.log")) for subject in subjects}
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        context = browser.new_context(viewport=VIEWPORT)
        for subject in subjects:  # warm-up: the browser caches Streamlit's scripts, each server opens its store
            for page in PAGES:
                with contextlib.closing(context.new_page()) as tab:
                    browser_open(tab, bases[subject.store], page, subject.alert_id)
        for round_ in range(repeats):
            print(f"  browser, round {round_ + 1} of {repeats}", flush=True)
            for page in PAGES:
                for subject in turns(subjects, round_):
                    got = samples[subject.store, page]
                    try:
                        with contextlib.closing(context.new_page()) as tab:  # a new tab, as when a link is opened
                            connected, first = browser_open(tab, bases[subject.store], page, subject.alert_id)
                            got["first"].append(first)
                            got["first_connected"].append(connected)
                            got["refresh"].append(browser_rerun(tab))
                            got["reload"].append(browser_open(tab, bases[subject.store], page, subject.alert_id)[1])
                    except Exception as error:
                        raise RuntimeError(f"browser, {subject.store}, page {page!r}: {error}") from error
        return browser.version, {subject.store: {page: {measure: spread(seconds) for measure, seconds in samples[subject.store, page].items()}
                                                 for page in PAGES} for subject in subjects}


# --------------------------------------------------------------------------- report


MEASURES = {"server": ("first", "refresh"), "browser": ("first", "reload", "refresh")}  # what the target is about


def misses(pages: dict[str, Any]) -> list[str]:
    """The measures of a store's pages whose median is over the target, as ``page: where measure``."""
    return [f"{page}: {where} {measure}" for page, figures in pages.items() for where, measures in MEASURES.items()
            for measure in measures if measure in figures.get(where, {}) and figures[where][measure]["median_ms"] > TARGET_MS]


def cell(stats: dict[str, float] | None) -> str:
    """``median / max`` in ms for the table, or a dash."""
    return f"{stats['median_ms']:>7,.0f} / {stats['max_ms']:>5,.0f}" if stats else f"{'-':>15s}"


def print_table(store: str, n: int, repeats: int, pages: dict[str, Any]) -> None:
    """The per-page figures of one store, then the store calls of every page over the target."""
    print(f"\n{store}, {n:,} alerts: ms, median / max of {repeats}; store = share of the server first render spent in "
          "store calls; connected = median part of the browser's first render before the app could ask for the page")
    print(f"{'page':10s} {'server first':>15s} {'server refresh':>15s} {'store':>6s} {'browser first':>15s} {'connected':>10s} "
          f"{'browser reload':>15s} {'browser rerun':>15s}  over 1 s")
    over = misses(pages)
    for page, figures in pages.items():
        server, browser = figures["server"], figures.get("browser", {})
        share = server["store_first"]["median_ms"] / server["first"]["median_ms"]
        connected = f"{browser['first_connected']['median_ms']:>10,.0f}" if browser else f"{'-':>10s}"
        missed = ", ".join(miss.split(": ")[1] for miss in over if miss.startswith(f"{page}: ")) or "-"
        print(f"{page:10s} {cell(server['first'])} {cell(server['refresh'])} {share:>6.0%} {cell(browser.get('first'))} {connected} "
              f"{cell(browser.get('reload'))} {cell(browser.get('refresh'))}  {missed}")
    for page, figures in pages.items():
        server = figures["server"]
        if max(server[measure]["median_ms"] for measure in MEASURES["server"]) > TARGET_MS:
            calls = "; ".join(f"{call} x{f['calls']} {f['median_ms']:,.0f}" for call, f in list(server["store_calls_first"].items())[:5])
            print(f"  {page}: {server['store_first']['median_ms']:,.0f} of {server['first']['median_ms']:,.0f} ms server side "
                  f"in store calls: {calls}")


def code_state() -> dict[str, Any]:
    """The commit measured and the files changed on top of it (the working tree may hold others' edits)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "changed": git("status", "--short").splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50,000 alerts and 3 repetitions")
    parser.add_argument("--alerts", type=int, help="how many alerts the stores hold (overrides --quick)")
    parser.add_argument("--repeats", type=int, help="measured runs of each page (default 7, --quick 3)")
    parser.add_argument("--stores", default="elasticsearch,sqlite")
    parser.add_argument("--no-browser", action="store_true", help="server-side figures only")
    parser.add_argument("--reload", action="store_true", help="rebuild the stores' data even if it is there")
    args = parser.parse_args()
    n = args.alerts or (50_000 if args.quick else 1_000_000)
    repeats = args.repeats or (3 if args.quick else 7)
    streamlit.config.set_option("logger.level", "error")  # else each AppTest logs a harmless "missing ScriptRunContext"
    set_log_level("error")
    DATA.mkdir(parents=True, exist_ok=True)
    train_model()
    os.environ[data.MODEL_ENV] = str(MODEL)
    results: dict[str, Any] = {"alerts": n, "labelled": labelled(n), "repeats": repeats, "target_ms": TARGET_MS,
                               "streamlit": streamlit.__version__, "code": code_state(), "stores": {}}
    subjects, started_here = [], False
    for name in args.stores.split(","):
        if name == "sqlite":
            url, seconds = sqlite_data(n, args.reload)
            figures: dict[str, Any] = {}
        elif name == "elasticsearch":
            address, started_here = node(name)
            if address is None:
                results["stores"][name] = {"skipped": "no node"}
                continue
            url, seconds, version = elasticsearch_data(address, n, args.reload)
            figures = {"version": version, "request_cache": "off"}
        else:
            raise SystemExit(f"unknown store {name!r}: choose elasticsearch and/or sqlite")
        subjects.append(Subject(name, url, labelled_alert(url)))
        results["stores"][name] = {**figures, "url": url, "alert_id": subjects[-1].alert_id,
                                   "load_seconds": round(seconds, 1) if seconds is not None else "reused"}
    print(f"measuring {len(PAGES)} pages x {repeats} over {', '.join(s.store for s in subjects)} "
          f"(Alert page: {', '.join(s.alert_id for s in subjects)})", flush=True)
    results["load_avg_1m"] = {"before": load()}
    pages = {store: {page: {"server": stats} for page, stats in by_page.items()} for store, by_page in measure_server(subjects, repeats).items()}
    results["load_avg_1m"]["after_server_side"] = load()
    if not args.no_browser:
        results["chromium"], browser = measure_browser(subjects, repeats)
        for store, by_page in browser.items():
            for page, stats in by_page.items():
                pages[store][page]["browser"] = stats
        results["load_avg_1m"]["after_browser"] = load()
    for store, by_page in pages.items():
        results["stores"][store].update({"pages": by_page, "over_target": misses(by_page)})
        print_table(store, n, repeats, by_page)
    print(f"1-minute load average ({os.cpu_count()} CPUs): {results['load_avg_1m']}")
    if started_here:
        subprocess.run([str(ROOT / "scripts" / "services" / "elasticsearch"), "stop"], capture_output=True, timeout=120, cwd=ROOT)
    path = write_results("dashboard", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
