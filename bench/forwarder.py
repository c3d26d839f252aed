"""The two-hop ceiling: a bare FastAPI gateway that forwards each request to the
one-hop endpoint over a pooled ``aiohttp`` session, as anonchat's gateway does, with no
authentication, rate limit or middleware."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI, Request, Response


def create_app() -> FastAPI:
    """The bare gateway: ``POST /send_message`` forwarded to ``BENCH_UPSTREAM``."""
    upstream = os.environ["BENCH_UPSTREAM"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(upstream, connector=connector) as session:
            app.state.session = session
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/send_message")
    async def send_message(request: Request) -> Response:
        session: aiohttp.ClientSession = request.app.state.session
        async with session.post(
            "/send_message",
            data=await request.body(),
            headers={"content-type": "application/json"},
        ) as answer:
            return Response(
                await answer.read(),
                status_code=answer.status,
                media_type=answer.headers.get("content-type"),
            )

    return app
