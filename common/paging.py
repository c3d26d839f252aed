"""The ``Link`` header of paged lists: ``rel="next"`` to read on, ``rel="prev"`` to read
back."""

from __future__ import annotations

from typing import Literal

from starlette.datastructures import URL


def next_link(url: URL, rel: Literal["next", "prev"] = "next", **params: str | int) -> str:
    """The Link header value pointing at ``url`` with ``params`` replacing its own."""
    return f'<{url.include_query_params(**params)}>; rel="{rel}"'
