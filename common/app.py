"""The skeleton every anonchat FastAPI app shares."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI

from common.errors import install_error_handlers
from common.health import HEALTH_PATHS, Check, health_router
from common.internal import InternalAuthMiddleware
from common.logging import configure_logging
from common.metrics import HttpMetricsMiddleware, serve_metrics
from common.openapi import exact_bounds
from common.settings import ServiceSettings

# Net new objects that start a young collection (Python's default is 700).
YOUNG_GENERATION = 7000


class Lifespan(Protocol):
    def __call__(self, app: FastAPI) -> AbstractAsyncContextManager[None]: ...


def build_app(
    *,
    service: str,
    title: str,
    settings: ServiceSettings,
    lifespan: Lifespan,
    checks: Mapping[str, Check],
    routers: Iterable[APIRouter],
    internal: bool = True,
    amend_document: Callable[[dict[str, Any]], None] | None = None,
    **fastapi_options: Any,
) -> FastAPI:
    """A FastAPI app with the error shape, the health probes, request metrics (served on
    the metrics port while the app runs) and, for services behind the gateway, the
    internal-token check. ``lifespan`` builds what the routes use (with the same
    ``settings``) and keeps it on ``app.state`` as one typed object; ``amend_document``
    adds to the OpenAPI document what only the running settings know."""
    configure_logging(settings.log_level)
    app = FastAPI(
        title=title, lifespan=_frozen_after(_metrics_served(lifespan, settings)), **fastapi_options
    )
    install_error_handlers(app)
    app.include_router(health_router(checks))
    for router in routers:
        app.include_router(router)
    exact_bounds(app, then=amend_document)
    if internal:
        app.add_middleware(
            InternalAuthMiddleware,
            token=settings.internal_token.get_secret_value(),
            open_paths=HEALTH_PATHS,
        )
    # Outermost of these, so that requests refused by the token check are counted too.
    app.add_middleware(HttpMetricsMiddleware, service=service)
    return app


def _metrics_served(lifespan: Lifespan, settings: ServiceSettings) -> Lifespan:
    """``lifespan``, with the metrics port open while it runs."""

    @asynccontextmanager
    async def served(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            stop = serve_metrics(settings.metrics_port, settings.metrics_host)
            try:
                yield
            finally:
                stop()

    return served


def _frozen_after(lifespan: Lifespan) -> Lifespan:
    """``lifespan``, then ``gc.freeze()``: what exists once the app has started (modules,
    routes, pools: over a hundred thousand objects) lives as long as the process, and a
    full collection no longer walks it. Unfrozen, each full collection paused the process
    for tens of milliseconds every few seconds under load, which made the tail of
    ``POST /send_message`` (the measurement is in the commit that added this).

    What comes later cannot be frozen: open event streams are hundreds of objects each,
    and with a thousand open each full collection walked them for tens of milliseconds.
    The objects of requests in flight at each young collection are promoted, and enough
    promotions start a full one; a young generation of ``YOUNG_GENERATION`` objects
    rather than Python's 700 makes young collections, and so promotions, that much
    rarer."""

    @asynccontextmanager
    async def frozen(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            gc.freeze()
            _, older, oldest = gc.get_threshold()
            gc.set_threshold(YOUNG_GENERATION, older, oldest)
            yield

    return frozen
