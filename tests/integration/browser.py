"""Headless Chromium for page tests: Playwright's Python driver on the system's Debian ``chromium``.

Playwright's own browser download needs the internet, which an on-premise CI does not have, so the
browser is the distribution's (``apt-get install chromium``, done by ``.ci/run``). A missing
browser fails the test with the install hint: a page test that skips would pass CI without ever
having looked at the page.

Every console error and uncaught page error is collected; screenshots go to the tests' output
folder, ``$HEARTH_TEST_OUTPUT`` or ``test-output/`` at the repository root (ignored by git).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shared.settings import REPO_ROOT

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Error, Page

INSTALL_HINT = (
    "headless Chromium is needed for the page tests: `apt-get install -y --no-install-recommends chromium` "
    "(Debian; .ci/run installs it) and the dev extras (`make setup` installs Playwright's Python package)"
)


def output_dir() -> Path:
    """The tests' output folder (screenshots), created on first use."""
    path = Path(os.environ.get("HEARTH_TEST_OUTPUT") or REPO_ROOT / "test-output")
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_executable() -> str:
    """The system Chromium; fails (never skips) with the install hint when there is none."""
    path = os.environ.get("HEARTH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail(f"no chromium on PATH: {INSTALL_HINT}", pytrace=False)
    return path


@dataclass
class PageErrors:
    """What the page reported: console messages of type error, and exceptions nothing caught."""

    console: list[str] = field(default_factory=list)
    uncaught: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location
            self.console.append(f"{message.text} ({location.get('url', '')}:{location.get('lineNumber', '')})")

    def on_page_error(self, error: Error) -> None:
        self.uncaught.append(f"{error.name}: {error.message}\n{error.stack or ''}")

    def all(self, *, ignore: str | None = None) -> list[str]:
        """Every error, less those matching the regex ``ignore`` (e.g. an expected 401 of the network log)."""
        found = [*self.console, *self.uncaught]
        return [e for e in found if not (ignore and re.search(ignore, e))]

    def clear(self) -> None:
        self.console.clear()
        self.uncaught.clear()


@dataclass
class BrowserPage:
    page: Page
    errors: PageErrors

    @staticmethod
    def screenshot_path(name: str) -> Path:
        """``<output folder>/<name>.png``, for a screenshot taken some other way (e.g. of one element)."""
        return output_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"

    async def screenshot(self, name: str, *, full_page: bool = True, selector: str | None = None) -> Path:
        """Save the page (or the element at ``selector``) as ``<name>.png`` in the tests' output folder."""
        path = self.screenshot_path(name)
        if selector is None:
            await self.page.screenshot(path=str(path), full_page=full_page)
        else:
            await self.page.locator(selector).screenshot(path=str(path))
        return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless system Chromium for one test module."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail(f"the playwright package is missing: {INSTALL_HINT}", pytrace=False)
    executable = chromium_executable()
    async with async_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = await pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def new_page(browser: Browser, *, width: int = 1440, height: int = 1000) -> AsyncIterator[BrowserPage]:
    """A fresh context (own sessionStorage) and page, with its errors collected from the start."""
    # The gateway serves the stack's own CA's certificate, which this Chromium has no store for;
    # every other client of the tests verifies it (tests/integration/conftest.py: SSL_CERT_FILE).
    context = await browser.new_context(viewport={"width": width, "height": height}, ignore_https_errors=True)
    page = await context.new_page()
    errors = PageErrors()
    page.on("console", errors.on_console)
    page.on("pageerror", errors.on_page_error)
    try:
        yield BrowserPage(page, errors)
    finally:
        await context.close()
