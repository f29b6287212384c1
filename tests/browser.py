"""Real headless Chromium (Debian's) driven by Playwright, against the app served on loopback."""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest
from werkzeug.serving import make_server

from tests.conftest import unavailable

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]


class LiveServer:
    """The app on 127.0.0.1 in a thread, for the browser to reach."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


@pytest.fixture(scope="session")
def chromium() -> Iterator:
    """One headless Chromium for the session (fails under CI when it is missing, skips elsewhere)."""
    if not Path(CHROMIUM).exists():
        unavailable("Chromium", f"none at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def live(app) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """The test app served on loopback."""
    app.config["SESSION_COOKIE_SECURE"] = False  # the test server speaks plain http on 127.0.0.1
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def page(chromium, request) -> Iterator:  # type: ignore[no-untyped-def]
    """A fresh browser page; a screenshot of where it ended is kept in tests/artifacts/."""
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(15000)
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()


def shot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Keep a screenshot of the current page as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
