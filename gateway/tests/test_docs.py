"""``/docs``: Swagger UI from the gateway's own files, under a strict policy."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway import api_docs
from gateway.app import create_app
from gateway.config import Settings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(Settings()))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def test_the_docs_page_names_only_files_the_gateway_serves(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == api_docs.CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in api_docs.CONTENT_SECURITY_POLICY
    assert [tag for tag in re.findall(r"<script[^>]*>", page.text) if "src=" not in tag] == []
    assert "<style" not in page.text
    named = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert len(named) == 4
    for path in named:
        assert path.startswith("/docs/assets/"), path
        answer = await client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].split(";")[0] in {
            "text/javascript",
            "text/css",
            "image/png",
        }
        assert answer.content


async def test_swagger_ui_is_started_on_this_document_and_asks_no_validator(
    client: httpx.AsyncClient,
) -> None:
    start = (await client.get("/docs/assets/init.js")).text
    assert 'url: "/openapi.json"' in start
    assert "validatorUrl: null" in start
    assert not re.search(r"https?://", start)


async def test_no_cdn_page_is_left_and_unknown_assets_are_404(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/redoc")).status_code == 404
    assert (await client.get("/docs/oauth2-redirect")).status_code == 404
    missing = await client.get("/docs/assets/nothing.js")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/docs")]
