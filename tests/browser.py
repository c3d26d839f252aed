"""The web page in a real browser: Debian's Chromium driven by Playwright, on loopback only.

Playwright never downloads a browser here: it starts ``/usr/bin/chromium`` (installed by
``.ci/run`` from Debian's packages). Each person is a browser context of their own (as two
people on two machines), watched for what must never happen: a request to another origin,
the token in a URL or in the console, a script error, a Content-Security-Policy refusal.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Request,
    expect,
    sync_playwright,
)

from tests.api import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium calls hosts of its own (updates,
# safe browsing, sync); here nothing may leave the machine.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every wait in the browser tests is bounded by this (ms).
TIMEOUT_MS = 10_000
# Chromium logs each refused request ("Failed to load resource: ... 401"): those are
# the page doing its work; any other error in the console is a fault.
_RESOURCE_ERROR = re.compile(r"^Failed to load resource")

expect.set_options(timeout=TIMEOUT_MS)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless. Where it is missing the tests skip, saying why, except
    in CI, which installs it: there a missing browser is a failure, not a quiet skip."""
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watch:
    """What one browser context did that the tests check afterwards."""

    origin: str
    urls: list[str] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Nothing left the origin, the token was never in a URL or the console, and the
        page raised nothing."""
        assert self.errors == []
        assert [u for u in self.urls if not u.startswith(self.origin + "/")] == []
        for token in self.tokens:
            assert not any(token in url for url in self.urls)
            assert not any(token in line for line in self.console)
        faults = [line for line in self.console if line.startswith("error:")]
        assert [line for line in faults if not _RESOURCE_ERROR.match(line[7:])] == []


class Person:
    """Someone at the page in a browser context of their own."""

    def __init__(self, context: BrowserContext, watch: Watch) -> None:
        self.context = context
        self.watch = watch
        self.page = self.new_page()

    def new_page(self) -> Page:
        page = self.context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.watch.errors.append(str(error)))
        page.on("dialog", self._dialog)
        page.on("request", self._request)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        self.watch.console.append(f"{message.type}: {message.text}")

    def _dialog(self, dialog: Dialog) -> None:
        self.watch.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Request) -> None:
        self.watch.urls.append(request.url)
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            self.watch.tokens.add(authorization.removeprefix("Bearer "))

    def open(self) -> Page:
        self.page.goto("/")
        return self.page

    def sign_in(self, name: str, *, register: bool = False, password: str = PASSWORD) -> None:
        """Log in (or register, then log in) through the form."""
        page = self.page
        page.get_by_label("Name").fill(name)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Register" if register else "Log in").click()

    def signed_in(self, name: str) -> None:
        expect(self.page.locator("#me")).to_have_text(name)
        expect(self.page.get_by_label("Find someone")).to_be_visible()

    def talk_to(self, name: str, *, search: str | None = None) -> None:
        """Find ``name`` with the search box (typing ``search``, else the name) and open
        the conversation."""
        page = self.page
        page.get_by_label("Find someone").fill(search or name)
        self.user_button(name).click()
        expect(page.locator("#peer")).to_have_text(name)
        expect(page.locator("#log-note")).not_to_have_text("Loading the conversation…")

    def write(self, text: str) -> None:
        """Type ``text`` into the composer and send it with Enter."""
        self.page.get_by_label("Message", exact=True).fill(text)
        self.page.get_by_label("Message", exact=True).press("Enter")

    def texts(self) -> list[str]:
        return self.page.locator("#messages .text").all_text_contents()

    def user_button(self, name: str) -> Locator:
        return self.page.locator(f'#users button:has(.name:text-is("{name}"))')

    def message(self, text: str) -> Locator:
        """The message in the open conversation whose text is ``text``."""
        return self.page.locator(f'#messages .message:has(.text:text-is("{text}"))')

    def settings(self) -> Locator:
        """The settings dialog, opened from the header bar."""
        self.page.get_by_role("button", name="Settings").click()
        dialog = self.page.get_by_role("dialog", name="Settings")
        expect(dialog).to_be_visible()
        return dialog

    def confirm(self, answer: str) -> None:
        """Answer the confirmation the page asks with its button ``answer``."""
        dialog = self.page.locator("#confirm")
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name=answer, exact=True).click()
        expect(dialog).to_be_hidden()
