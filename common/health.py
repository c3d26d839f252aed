"""``/healthz`` (the process is alive) and ``/readyz`` (its dependencies answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

Check = Callable[[Request], Awaitable[bool]]
HEALTH_PATHS = ("/healthz", "/readyz")


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether every dependency answers, and which does not."""

    status: Literal["ready", "not ready"]
    checks: dict[str, Literal["ok", "unavailable"]]
    detail: str | None = None


def health_router(checks: Mapping[str, Check], *, timeout: float = 2.0) -> APIRouter:
    """A router with the two probes; ``checks`` name each dependency ``/readyz`` tries."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        """Liveness: the process answers."""
        return Health()

    @router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: every dependency (database, Redis, upstream services) answers."""

        async def run(check: Check) -> bool:
            try:
                return await asyncio.wait_for(check(request), timeout)
            except Exception:
                return False

        results = await asyncio.gather(*(run(check) for check in checks.values()))
        states = {
            name: ("ok" if ok else "unavailable") for name, ok in zip(checks, results, strict=True)
        }
        down = [name for name, state in states.items() if state != "ok"]
        body = Readiness(
            status="not ready" if down else "ready",
            checks=states,
            detail=f"unavailable: {', '.join(down)}" if down else None,
        )
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503 if down else 200)

    return router
