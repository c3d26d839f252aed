"""The ``Link: <...>; rel="next"`` header of paged lists."""

from __future__ import annotations

from starlette.datastructures import URL


def next_link(url: URL, **params: str | int) -> str:
    """The Link header value pointing at ``url`` with ``params`` replacing its own."""
    return f'<{url.include_query_params(**params)}>; rel="next"'
