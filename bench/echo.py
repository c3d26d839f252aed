"""The one-hop ceiling: a bare FastAPI endpoint that answers a send the way anonchat does
(parse the JSON body, answer 202 with a small JSON document), doing nothing else."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, status


def create_app() -> FastAPI:
    """The bare endpoint: ``POST /send_message``."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/send_message", status_code=status.HTTP_202_ACCEPTED)
    async def send_message(body: dict[str, Any]) -> dict[str, Any]:
        return {"id": 1, "sender_id": 1, "receiver_id": body.get("receiver_id")}

    return app
