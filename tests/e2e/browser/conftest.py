"""Browser fixtures: Debian's Chromium driven by Playwright, and the dashboard served as a real process.

Chromium comes from scripts/install-browser (never ``playwright install``, which downloads a browser build).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from support import BIN, CHROMIUM_ARGS, ROOT, SERVICE_DEADLINE_S, VIEWPORT, free_port, serving

# Waits on what the page shows, with the suite's one generous deadline: Playwright's 5 s default
# failed on a loaded 2-core machine (a Streamlit rerun took longer), never because the page was wrong.
expect.set_options(timeout=SERVICE_DEADLINE_S * 1000)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, shared by the session; fails (never skips) when it is not installed."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not on PATH: run scripts/install-browser (scripts/test does)", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own browser context (1400x1000 viewport), closed after the test."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(SERVICE_DEADLINE_S * 1000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """var/screenshots/ under the repo root (git-ignored), where tests save PNGs for CI to keep."""
    directory = ROOT / "var" / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def serve_dashboard(tmp_path: Path) -> Callable[..., AbstractContextManager[str]]:
    """``serve_dashboard(store, model, extra_args=())``: serve the dashboard while in the block, yielding its URL."""
    return functools.partial(served_dashboard, log_dir=tmp_path)


@contextlib.contextmanager
def served_dashboard(store: str | Path, model: str | Path, extra_args: Sequence[str] = (), *, log_dir: Path,
                     base_path: str = "") -> Iterator[str]:
    """Run ``fraudstream dashboard`` on a free port (under ``base_path`` if given) until healthy, yield its base URL,
    then stop its process group."""
    port = free_port()
    log = log_dir / f"dashboard-{port}.log"
    prefix = f"/{base_path.strip('/')}" if base_path.strip("/") else ""
    args = [str(BIN), "dashboard", "--store", str(store), "--model", str(model), "--port", str(port),
            "--address", "127.0.0.1", "--base-path", prefix, *extra_args]
    url = f"http://127.0.0.1:{port}{prefix}"
    with serving(args, url, log):
        yield url
