"""The gateway serving the web page: its files, their headers, and the API left as it was."""

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway import web
from gateway.app import create_app
from gateway.config import Settings

INDEX = (web.WEB_FOLDER / "index.html").read_text()
WEB_FILES = sorted(p for p in web.WEB_FOLDER.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # The page needs nothing the lifespan builds.
    transport = httpx.ASGITransport(app=create_app(Settings()))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def test_the_page_is_served_at_the_root_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def _referenced(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/[^"]*)"', html)


async def test_every_file_the_page_names_is_served_with_its_type(
    client: httpx.AsyncClient,
) -> None:
    referenced = _referenced(INDEX)
    assert "/app/main.js" in referenced
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in referenced:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(types[Path(path).suffix]), path
        assert "content-security-policy" in response.headers
    # The modules' own imports resolve to files that are served too.
    for module in WEB_FILES:
        for imported in re.findall(r'from "\./([^"]+)"', module.read_text()):
            assert (await client.get(f"/app/{imported}")).status_code == 200


async def test_files_are_kept_and_revalidated_with_their_etag(client: httpx.AsyncClient) -> None:
    first = await client.get("/app/main.js")
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    again = await client.get("/app/main.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = await client.get("/app/main.js", headers={"If-None-Match": '"something else"'})
    assert other.status_code == 200
    assert other.content == first.content
    assert (await client.get("/")).headers["etag"] != etag


async def test_the_api_keeps_no_store_and_its_json_404s(client: httpx.AsyncClient) -> None:
    probe = await client.get("/healthz")
    assert probe.headers.get_list("cache-control") == ["no-store"]
    assert "content-security-policy" not in probe.headers
    for path in ["/app/missing.js", "/app/../pyproject.toml", "/app/", "/index.html", "/web"]:
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    assert (await client.get("/docs")).status_code == 200


def test_the_page_stays_out_of_the_api_document() -> None:
    paths = create_app(Settings()).openapi()["paths"]
    assert "/" not in paths
    assert not [path for path in paths if path.startswith("/app")]


@pytest.mark.parametrize("path", WEB_FILES, ids=lambda p: p.name)
def test_the_page_fetches_nothing_from_elsewhere_and_inlines_no_code(path: Path) -> None:
    # An SVG names its XML namespace with a URL that nothing fetches.
    text = path.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE)
    if path.suffix == ".html":
        assert [tag for tag in re.findall(r"<script[^>]*>", text) if "src=" not in tag] == []
        assert "<style" not in text
        assert " style=" not in text
        assert not re.search(r"\son[a-z]+=", text)
    if path.suffix == ".js":
        # Text from the server goes into text nodes; nothing is parsed as HTML.
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", text)


def test_a_file_of_an_unknown_type_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "app" / "notes.txt").write_text("?")
    with pytest.raises(ValueError, match="no media type"):
        web.load(tmp_path)
