"""The library across restarts of the stack's parts (a whole stack of its own each,
tests/faults/stack.py): a retried send is stored once, and the event stream goes on
after the gateway comes back with no gap and no duplicate."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import httpx

from anonchat_client import Client, MessageEvent
from tests.api import PASSWORD, eventually, unique_name
from tests.faults.stack import FaultStack, fault_stack  # noqa: F401 (a fixture)


class Noting(httpx.HTTPTransport):
    """A transport that notes the status of each answer, and each stream opened."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []
        self.streams = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        self.streams += request.url.path == "/events" and response.status_code == 200
        return response


def logged_in(stack: FaultStack, transport: httpx.BaseTransport | None = None) -> Client:
    client = Client(stack.gateway_url, transport=transport, retry_deadline=60)
    name = unique_name("f")
    user = client.register(name, PASSWORD)
    client.login(name, PASSWORD)
    assert client.session is not None
    client.use_session(replace(client.session, user_id=user.id))
    return client


def me(client: Client) -> int:
    assert client.session is not None
    assert client.session.user_id is not None
    return client.session.user_id


def in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = target()
        except BaseException as exc:  # handed to the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_a_send_retried_across_a_message_service_restart_is_stored_once(
    fault_stack: FaultStack,  # noqa: F811
):
    transport = Noting()
    with logged_in(fault_stack, transport) as alice, logged_in(fault_stack) as bob:
        receiver = me(bob)
        fault_stack.kill("message_service")
        thread, result = in_thread(lambda: alice.send(receiver, "across the restart"))
        eventually(lambda: 503 in transport.statuses, timeout=30)
        fault_stack.start("message_service")
        thread.join(60)
        assert "error" not in result, result
        sent = result["value"]

        def stored() -> list[Any]:
            return [m for m in fault_stack.stored().values() if m.content == "across the restart"]

        assert [m.id for m in eventually(stored, timeout=30)] == [sent.id]
        assert [m.id for m in alice.messages(receiver)] == [sent.id]


def test_events_go_on_across_a_gateway_restart_without_gap_or_duplicate(
    fault_stack: FaultStack,  # noqa: F811
):
    transport = Noting()
    with logged_in(fault_stack) as alice, logged_in(fault_stack, transport) as bob:
        receiver = me(bob)
        got: list[MessageEvent] = []

        def follow() -> None:
            for event in bob.events():
                if isinstance(event, MessageEvent):
                    got.append(event)
                if len(got) >= 6:
                    return

        follower, outcome = in_thread(follow)
        before = [alice.send(receiver, f"before {n}").id for n in range(3)]
        eventually(lambda: len(got) >= 3, timeout=30)
        fault_stack.kill("gateway")
        # Sent while the gateway is down: each retries until it is back.
        senders = [in_thread(lambda n=n: alice.send(receiver, f"after {n}").id) for n in range(3)]
        fault_stack.start("gateway")
        after = []
        for thread, result in senders:
            thread.join(60)
            assert "error" not in result, result
            after.append(result["value"])
        follower.join(60)
        assert "error" not in outcome, outcome
    assert transport.streams >= 2  # the stream was resumed
    ids = [event.message.id for event in got]
    assert ids[:3] == before
    assert sorted(ids[3:]) == sorted(after)
    cursors = [event.message.cursor or 0 for event in got]
    assert cursors == sorted(set(cursors))
