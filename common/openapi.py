"""The OpenAPI document as the validators read it.

FastAPI's OpenAPI models hold ``minimum``, ``maximum`` and their exclusive forms as
floats (fastapi/fastapi#3355), so a bound of 2**63 - 1 comes out as 9.223372036854776e18,
which is 2**63: the document would allow an id the server refuses. The schemas pydantic
made are exact; :func:`exact_bounds` puts their integers back.

And an optional parameter (``int | None = None``) comes out as "an integer or null",
but a query string or a header has no null: the parameter is there, or it is not. Its
schema is said without the null."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from common.schemas import MAX_BIGINT

_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
# Floats hold every integer up to 2**53 exactly; past it, the bounds this API uses.
_EXACT_UP_TO = 2**53
_LARGE = {float(bound): bound for bound in (MAX_BIGINT, -MAX_BIGINT - 1)}


def _exact(value: float) -> int:
    if abs(value) <= _EXACT_UP_TO:
        return int(value)
    if value in _LARGE:
        return _LARGE[value]
    raise ValueError(f"no exact integer known for the schema bound {value!r} (see _LARGE)")


def _restore(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in _BOUNDS:
                if isinstance(node.get(key), float) and node[key].is_integer():
                    node[key] = _exact(node[key])
        for value in node.values():
            _restore(value)
    elif isinstance(node, list):
        for value in node:
            _restore(value)


def _without_null(parameter: dict[str, Any]) -> None:
    schema = parameter.get("schema", {})
    branches = [branch for branch in schema.get("anyOf", ()) if branch != {"type": "null"}]
    if "anyOf" in schema and len(branches) == 1:
        del schema["anyOf"]
        schema.update(branches[0])


def _parameters_without_null(document: dict[str, Any]) -> None:
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", ()):
                _without_null(parameter)


def exact_bounds(app: FastAPI, *, then: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Serve ``app``'s document with integer bounds as integers and parameters that are
    absent rather than null, amended by ``then``."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            _restore(document)
            _parameters_without_null(document)
            if then is not None:
                then(document)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
