"""What the gateway does to every request at the edge, as plain ASGI (no per-request
object churn): a request id, a bound on the body size, and security headers."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import AppError, send_error
from common.internal import REQUEST_ID_HEADER, request_id, valid_request_id

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# Unless a response says otherwise (the web page's files may be kept), nothing is kept.
_NO_STORE = (b"cache-control", b"no-store")


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class EdgeMiddleware:
    """Tag each request with an id, refuse bodies over ``max_body_bytes`` before they are
    parsed, and add security headers (and ``Cache-Control: no-store`` where the response sets
    none) to each response."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = valid_request_id(headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1"))
        rid = rid or uuid.uuid4().hex
        token = request_id.set(rid)
        limit = self.max_body_bytes
        too_large = f"the request body is larger than {limit} bytes"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in sent):
                    sent.append(_NO_STORE)
                message["headers"] = [
                    *sent,
                    *_SECURITY_HEADERS,
                    (REQUEST_ID_HEADER.encode(), rid.encode()),
                ]
            await send(message)

        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(too_large)
            return message

        try:
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await send_error(send_with_headers, 413, too_large, code=PayloadTooLarge.code)
                return
            await self.app(scope, bounded_receive, send_with_headers)
        finally:
            request_id.reset(token)
