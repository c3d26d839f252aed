"""One error shape for every service: ``{"detail": str, "code": str, "errors"?: [...]}``.

Domain code raises :class:`AppError` subclasses; the handlers installed by
:func:`install_error_handlers` render them, FastAPI's validation errors (without
echoing the refused input, which may be a password) and unknown paths the same way.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Send

from common.metrics import dependency_error

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One refused field: where it is and what is wrong with it."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    detail: str
    code: str
    errors: list[FieldError] | None = None


class AppError(Exception):
    """A failure with an HTTP status, a stable code and a message a person can act on."""

    status_code = 400
    code = "bad_request"
    # Headers every error of the kind carries, beside those given.
    default_headers: dict[str, str] = {}

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = {**self.default_headers, **(headers or {})} or None


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class InvalidInput(AppError):
    status_code = 422
    code = "invalid_input"


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"


class ServiceUnavailable(AppError):
    """A dependency does not answer: always with ``Retry-After``, so that clients back off."""

    status_code = 503
    code = "service_unavailable"
    default_headers = {"Retry-After": "1"}


class UpstreamTimeout(AppError):
    status_code = 504
    code = "upstream_timeout"


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
}


def error_response(
    status_code: int,
    detail: str,
    *,
    code: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Render the one error shape."""
    body = ErrorBody(
        detail=detail, code=code or HTTP_CODES.get(status_code, "error"), errors=errors
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status_code, headers=headers
    )


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry that documents a route's error statuses."""
    return {code: {"model": ErrorBody} for code in status_codes}


def describe_validation_error(error: dict[str, Any]) -> FieldError:
    """Turn one pydantic error into a field name and a message, never echoing the input."""
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
    field = ".".join(location) or "body"
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "missing":
        message = "is required"
    elif error.get("type") == "json_invalid":
        field, message = "body", "is not valid JSON"
    return FieldError(field=field, message=message)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(
        exc.status_code, exc.detail, code=exc.code, errors=exc.errors, headers=exc.headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [describe_validation_error(error) for error in exc.errors()]
    detail = "; ".join(f"{error.field}: {error.message}" for error in errors)
    return error_response(422, detail or "invalid request", errors=errors)


# FastAPI's words for a body it could not decode (invalid UTF-8): an invalid body like
# malformed JSON, so it gets the same 422.
_UNDECODABLE_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 400 and detail == _UNDECODABLE_BODY:
        message = "is not valid JSON (UTF-8)"
        return error_response(
            422, f"body: {message}", errors=[FieldError(field="body", message=message)]
        )
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.method} {request.url.path}"
    return error_response(exc.status_code, detail, headers=dict(exc.headers or {}))


def unavailable(what: str) -> JSONResponse:
    """The 503 for a dependency that does not answer: the client may retry shortly."""
    return error_response(
        503,
        f"{what} is unavailable, try again shortly",
        code="service_unavailable",
        headers={"Retry-After": "1"},
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    lost = isinstance(exc, OperationalError | InterfaceError | PoolTimeout)
    if isinstance(exc, DBAPIError) and not lost and not exc.connection_invalidated:
        return await _unexpected_error(request, exc)
    dependency_error("postgres")
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return unavailable("the database")


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    dependency_error("redis")
    log.warning("Redis unavailable on %s %s: %s", request.method, request.url.path, exc)
    return unavailable("the message store")


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # Nobody reads this answer: the client closed the connection before its request was
    # in. Not a server error, so one line and no traceback.
    log.info("client went away during %s %s", request.method, request.url.path)
    return error_response(400, "the client closed the connection", code="client_disconnected")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error", code="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error the app can raise in the one shape."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(RedisError, _redis_unavailable)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected_error)


async def send_error(send: Send, status_code: int, detail: str, *, code: str) -> None:
    """Send the one error shape from plain ASGI middleware, before any app ran."""
    body = json.dumps({"detail": detail, "code": code}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
