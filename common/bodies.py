"""Routes on the send path read their JSON body and headers themselves.

FastAPI resolves every parameter and dependency of a route on each request, which showed
in the CPU time per request of ``POST /send_message`` under load (the figures are in the
commit that made these routes lean). The routes every message passes through take only the request
and the caller, and document their body and headers with ``openapi_extra``, as FastAPI's
"Path Operation Advanced Configuration" does. Errors keep the one shape: a body that
does not validate is the same 422 as anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def documented(
    body: type[BaseModel], *, headers: Mapping[str, tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads a JSON ``body`` and optional
    ``headers`` (name: description and schema) itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body.model_json_schema()}},
        },
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": description,
                "schema": schema,
            }
            for name, (description, schema) in headers.items()
        ],
    }


async def read_body(request: Request, model: type[Model]) -> Model:
    """The request's JSON body as ``model``; a 422 naming the fields when it is not.

    Decoded by ``json.loads`` first, as FastAPI does, so that text JSON allows but Python
    refuses (a lone surrogate) is reported on its field, not as invalid JSON."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}]
        ) from None
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None
