"""The exceptions of the client: one per kind of refusal, each carrying the server's
``code`` and ``detail``, so that a caller never has to read an HTTP response."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One refused field of a request (a 422): where it is and what is wrong with it."""

    field: str
    message: str


class AnonchatError(Exception):
    """Anything the server refused, or a server that could not be reached.

    ``status`` is the HTTP status (``None`` when no answer came), ``code`` the server's
    stable error code, ``detail`` its sentence for a person."""

    def __init__(
        self,
        detail: str,
        *,
        code: str,
        status: int | None = None,
        errors: tuple[FieldError, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.status = status
        self.errors = errors
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, {self.detail!r})"


class BadRequest(AnonchatError):
    """The request was malformed or too large (400, 413)."""


class Unauthorized(AnonchatError):
    """Wrong credentials, or a token the server refuses (401)."""


class SessionExpired(Unauthorized):
    """The session is over (its token expired and could not be refreshed, it was ended,
    or there never was one): log in again."""


class Forbidden(AnonchatError):
    """The caller may not do this (403)."""


class NotFound(AnonchatError):
    """No such user, message or endpoint, as far as the caller may know (404)."""


class Conflict(AnonchatError):
    """The request clashes with what exists: a name taken, a reused idempotency key, a
    blocked receiver (409)."""


class InvalidInput(AnonchatError):
    """A field was refused (422); ``errors`` says which and why."""


class RateLimited(AnonchatError):
    """Too many requests (429); ``retry_after`` says in how many seconds to try again."""


class ServerError(AnonchatError):
    """The server failed on this request (500)."""


class Unavailable(AnonchatError):
    """The server or a service behind it is down or overloaded (502, 503, 504);
    ``retry_after`` says when to try again, when the server said."""


class ServerUnreachable(Unavailable):
    """No answer came: the connection was refused, failed or timed out."""


_BY_STATUS: dict[int, type[AnonchatError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: InvalidInput,
    429: RateLimited,
    500: ServerError,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_class(status: int) -> type[AnonchatError]:
    """The exception for an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else AnonchatError
