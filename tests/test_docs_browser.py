"""``/docs`` in Debian's Chromium with every request to another origin refused: Swagger UI
renders the gateway's operations from files the gateway serves, and the page's
Content-Security-Policy refuses nothing it does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Route, expect

from tests.browser import TIMEOUT_MS, Person, Watch, chromium
from tests.harness.stack import lone_gateway


@pytest.fixture(scope="module")
def gateway_url(redis_url: str) -> Iterator[str]:
    with lone_gateway(redis_url) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_the_api_docs_render_with_nothing_from_elsewhere(
    browser: Browser, gateway_url: str
) -> None:
    context = browser.new_context(base_url=gateway_url)
    context.set_default_timeout(TIMEOUT_MS)
    elsewhere: list[str] = []

    def only_here(route: Route) -> None:
        if route.request.url.startswith(gateway_url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_here)
    watch = Watch(gateway_url)
    try:
        person = Person(context, watch)
        page = person.page
        page.goto("/docs")
        operations = page.locator(".opblock")
        expect(operations.first).to_be_visible()
        expect(page.locator(".opblock-summary-path", has_text="/send_message")).to_be_visible()
        assert operations.count() >= 24
        expect(page.locator(".info .title")).to_contain_text("anonchat")
    finally:
        context.close()
    assert elsewhere == []
    # The policy's refusals are console errors ("Refused to ..."): none.
    assert [line for line in watch.console if "Content Security Policy" in line] == []
    watch.check()
