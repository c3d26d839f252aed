"""Slow clients against a real gateway process: a connection that sends part of its
headers and then nothing is closed once the request deadline passes, and meanwhile the
gateway answers everyone else."""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.harness.stack import lone_gateway

SLOW_CONNECTIONS = 600
REQUEST_TIMEOUT_SECONDS = 2
# Beyond the deadline, time for a loaded machine to get round to closing them all.
MARGIN_SECONDS = 30


@contextlib.contextmanager
def open_files(needed: int) -> Iterator[None]:
    """This process (and what it starts) may hold ``needed`` descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, needed)
    if hard != resource.RLIM_INFINITY and wanted > hard:
        pytest.skip(f"{needed} open files are needed, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def slow_gateway(redis_url: str) -> Iterator[str]:
    """A gateway process whose requests must be in within REQUEST_TIMEOUT_SECONDS."""
    deadline = {"ANONCHAT_SERVER_REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS)}
    # The slow connections' ends, in this process and in the gateway's.
    with open_files(2 * SLOW_CONNECTIONS + 1000), lone_gateway(redis_url, deadline) as url:
        yield url


def half_request(port: int) -> socket.socket:
    """A connection that has sent the start of a request's headers, and will send no more."""
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    connection.setblocking(False)
    return connection


def test_slow_connections_are_cut_off_while_others_are_answered(slow_gateway: str) -> None:
    port = httpx.URL(slow_gateway).port
    assert port is not None
    slow = [half_request(port) for _ in range(SLOW_CONNECTIONS)]
    watching = selectors.DefaultSelector()
    for connection in slow:
        watching.register(connection, selectors.EVENT_READ)
    open_ = set(slow)
    answered = 0
    deadline = time.monotonic() + REQUEST_TIMEOUT_SECONDS + MARGIN_SECONDS
    try:
        with httpx.Client(base_url=slow_gateway, timeout=10) as client:
            while open_ and time.monotonic() < deadline:
                response = client.get("/receive_message")
                assert response.status_code == 200, response.text
                answered += 1
                for key, _ in watching.select(timeout=0.2):
                    ready = key.fileobj
                    assert isinstance(ready, socket.socket)
                    try:
                        ended = ready.recv(4096) == b""
                    except ConnectionResetError:
                        ended = True
                    if ended:
                        watching.unregister(ready)
                        open_.discard(ready)
        assert not open_, f"{len(open_)} of {SLOW_CONNECTIONS} slow connections still open"
        assert answered > 0
    finally:
        watching.close()
        for connection in slow:
            connection.close()
