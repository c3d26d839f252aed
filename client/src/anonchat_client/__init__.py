"""The anonchat client: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio),
with the same methods, typed, over the public API of an anonchat gateway."""

from anonchat_client._async_client import AsyncClient
from anonchat_client._client import Client
from anonchat_client._core import DEFAULT_SERVER, __version__
from anonchat_client._errors import (
    AnonchatError,
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    ServerError,
    ServerUnreachable,
    SessionExpired,
    Unauthorized,
    Unavailable,
)
from anonchat_client._models import (
    DeletedEvent,
    Event,
    FailedEvent,
    Message,
    MessageEvent,
    OtherEvent,
    ReadEvent,
    Sent,
    Session,
    User,
)
from anonchat_client.sessions import CredentialsFile, MemoryStore, SessionStore

__all__ = [
    "DEFAULT_SERVER",
    "AnonchatError",
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "CredentialsFile",
    "DeletedEvent",
    "Event",
    "FailedEvent",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "MemoryStore",
    "Message",
    "MessageEvent",
    "NotFound",
    "OtherEvent",
    "RateLimited",
    "ReadEvent",
    "Sent",
    "ServerError",
    "ServerUnreachable",
    "Session",
    "SessionExpired",
    "SessionStore",
    "Unauthorized",
    "Unavailable",
    "User",
    "__version__",
]
