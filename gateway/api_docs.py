"""``/docs``: Swagger UI on the gateway's OpenAPI document, every file of it served by the
gateway itself, so that it works with no internet access and under a strict
Content-Security-Policy.

Swagger UI's script and style sheet come from the fastapi-offline distribution (a pinned
copy of swagger-ui-dist), read once when the app is built; the page and the script that
starts Swagger UI are ``gateway/docs_page/`` (FastAPI's own page starts it with an inline
script, which a strict policy refuses). ReDoc is not served: its styles are injected
inline."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request, Response

from common.errors import NotFound
from gateway.web import SAME_ORIGIN_ONLY, File, read_file, serve

PAGE_FOLDER = Path(__file__).resolve().parent / "docs_page"
DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets/"
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")

# Swagger UI renders descriptions as HTML and sets styles from script, so this policy has
# no Trusted Types (the chat page's has); everything else is as strict.
CONTENT_SECURITY_POLICY = "; ".join(SAME_ORIGIN_ONLY)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def load(folder: Path = PAGE_FOLDER) -> dict[str, File]:
    """The page, its start script and Swagger UI's files, by the path each is served at."""
    swagger_ui = files("fastapi_offline") / "static"
    found = {
        DOCS_PATH: read_file(folder / "index.html"),
        ASSETS_PATH + "init.js": read_file(folder / "init.js"),
    }
    for name in SWAGGER_UI_FILES:
        found[ASSETS_PATH + name] = read_file(Path(str(swagger_ui / name)))
    return found


def router() -> APIRouter:
    """The routes of ``/docs`` and its files; kept out of the API's OpenAPI document."""
    found = load()
    docs = APIRouter(include_in_schema=False)

    @docs.get(DOCS_PATH)
    async def page(request: Request) -> Response:
        """Swagger UI's page."""
        return serve(found[DOCS_PATH], request, HEADERS)

    @docs.get(ASSETS_PATH + "{name}")
    async def asset(name: str, request: Request) -> Response:
        """A script, style sheet or image of ``/docs``."""
        file = found.get(ASSETS_PATH + name)
        if file is None:
            raise NotFound(f"no such endpoint: GET {request.url.path}")
        return serve(file, request, HEADERS)

    return docs
