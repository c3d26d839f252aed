"""The web page: ``/`` (``web/index.html``) and its files under ``/app/`` (``web/app/``),
served as they are in the folder (no build step), with a strict Content-Security-Policy.

The files are read once, when the app is built: they are small, and a response from
memory costs nothing. Each has a strong ETag (a hash of its bytes) and ``no-cache``: a
browser keeps its copy and asks again each time, getting a body-less 304 until a deploy
changes the file, so a page never mixes modules of two versions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response

from common.errors import NotFound

WEB_FOLDER = Path(__file__).resolve().parent.parent / "web"
ASSETS_PATH = "/app/"

# Nothing from elsewhere, no inline script, no inline style sheet: the page's policy, and
# /docs' (gateway.api_docs).
SAME_ORIGIN_ONLY = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
]
CONTENT_SECURITY_POLICY = "; ".join(
    [
        *SAME_ORIGIN_ONLY,
        # No string ever becomes HTML: the page writes text nodes only, and Chromium
        # refuses an assignment to innerHTML and its kin outright.
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@dataclass(frozen=True)
class File:
    """One file of the page, as it is served."""

    body: bytes
    media_type: str
    etag: str


def read_file(path: Path) -> File:
    """A file as it is served: its bytes, media type and ETag."""
    media_type = MEDIA_TYPES.get(path.suffix)
    if media_type is None:
        raise ValueError(f"{path}: no media type for {path.suffix!r} files (see MEDIA_TYPES)")
    body = path.read_bytes()
    return File(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def load(folder: Path = WEB_FOLDER) -> dict[str, File]:
    """Every file of the page, by the path it is served at."""
    files = {"/": read_file(folder / "index.html")}
    for path in sorted((folder / "app").rglob("*")):
        if path.is_file():
            files[ASSETS_PATH + path.relative_to(folder / "app").as_posix()] = read_file(path)
    return files


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in if_none_match.split(","))


def serve(file: File, request: Request, headers: dict[str, str] = PAGE_HEADERS) -> Response:
    """``file``, with ``headers``; a body-less 304 when the browser's copy is current."""
    headers = {**headers, "ETag": file.etag}
    if _matches(request.headers.get("if-none-match"), file.etag):
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)


def router(folder: Path = WEB_FOLDER) -> APIRouter:
    """The routes of the page made of the files in ``folder``; kept out of the API's
    OpenAPI document."""
    files = load(folder)
    web = APIRouter(include_in_schema=False)

    @web.get("/")
    async def page(request: Request) -> Response:
        """The page."""
        return serve(files["/"], request)

    @web.get(ASSETS_PATH + "{name:path}")
    async def asset(name: str, request: Request) -> Response:
        """A script, style sheet or image of the page."""
        found = files.get(ASSETS_PATH + name)
        if found is None:
            raise NotFound(f"no such endpoint: GET {request.url.path}")
        return serve(found, request)

    return web
