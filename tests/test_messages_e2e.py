"""Messages through the real gateway, message_service, user_service and RQ workers."""

import os
import signal
import time
import uuid

import httpx
import psycopg
import pytest
import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from message_service.persistence.queued import QUEUE_NAME
from message_service.persistence.store import SEQ_LOCK
from stack.infra import libpq
from stack.processes import spawn, stack_processes
from tests.api import User, all_pages, eventually, new_user, send, wait_persisted

SAMPLE = {
    "status": "Message received",
    "message": {"from": "user123", "message": "Привет! Это тестовое сообщение."},
}


def stored_ids(gateway: httpx.Client, reader: User, with_user: int | None = None) -> list[int]:
    query = f"?with_user={with_user}&limit=1000" if with_user else "?limit=1000"
    return [int(m["id"]) for m in all_pages(gateway, "/get_messages" + query, reader.headers)]  # type: ignore[call-overload]


def test_two_users_exchange_messages_and_a_third_sees_none(gateway: httpx.Client) -> None:
    alice, bob, carol = (
        new_user(gateway, "alice"),
        new_user(gateway, "bob"),
        new_user(gateway, "carol"),
    )
    to_bob = send(gateway, alice, bob.id, "Привет, Bob!")
    assert to_bob.status_code == 202
    assert to_bob.json()["status"] == "queued"
    assert to_bob.json()["message"] == "Message sent successfully"
    to_alice = send(gateway, bob, alice.id, "Hi Alice")
    both = {to_bob.json()["id"], to_alice.json()["id"]}

    for reader in (alice, bob):
        eventually(lambda reader=reader: set(stored_ids(gateway, reader)) == both)  # type: ignore[misc]
    messages = gateway.get("/get_messages", headers=bob.headers).json()
    assert [m["content"] for m in messages] == ["Привет, Bob!", "Hi Alice"]
    assert set(messages[0]) == {
        "id",
        "cursor",
        "content",
        "sender_id",
        "receiver_id",
        "created_at",
        "read_at",
    }
    assert messages[0]["read_at"] is None
    assert (messages[0]["sender_id"], messages[0]["receiver_id"]) == (alice.id, bob.id)
    assert stored_ids(gateway, carol) == []
    for message_id in both:
        assert gateway.get(f"/messages/{message_id}", headers=carol.headers).status_code == 404


def test_the_status_moves_from_queued_to_persisted(gateway: httpx.Client) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    sent = send(gateway, alice, bob.id, "status?").json()
    first = gateway.get(f"/messages/{sent['id']}", headers=alice.headers).json()
    assert first["status"] in {"queued", "persisted"}
    assert first["content"] == "status?"
    final = wait_persisted(gateway, bob, sent["id"])
    assert final["created_at"] == sent["created_at"]


def test_refusals_403_404_422_and_401(gateway: httpx.Client) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    as_bob = gateway.post(
        "/send_message",
        json={"content": "x", "receiver_id": bob.id, "sender_id": bob.id},
        headers=alice.headers,
    )
    assert as_bob.status_code == 403
    assert send(gateway, alice, 10**15, "anyone?").status_code == 404
    for content in ("", "x" * 4001, "nul\x00"):
        assert send(gateway, alice, bob.id, content).status_code == 422
    wrong_type = gateway.post(
        "/send_message", json={"content": "x", "receiver_id": "two"}, headers=alice.headers
    )
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["field"] == "receiver_id"
    assert (
        gateway.post("/send_message", json={"content": "x", "receiver_id": bob.id}).status_code
        == 401
    )
    assert gateway.get("/get_messages").status_code == 401


def test_an_idempotent_retry_creates_no_second_message(gateway: httpx.Client) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    key = str(uuid.uuid4())
    first = send(gateway, alice, bob.id, "exactly once", **{"Idempotency-Key": key})
    again = send(gateway, alice, bob.id, "exactly once", **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    marker = send(gateway, alice, bob.id, "after").json()["id"]
    eventually(lambda: marker in stored_ids(gateway, bob))
    assert stored_ids(gateway, bob).count(first.json()["id"]) == 1
    assert len(stored_ids(gateway, bob)) == 2


def test_paging_through_the_gateway_sees_every_message_once(gateway: httpx.Client) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    sent = [
        send(gateway, alice if n % 2 else bob, (bob if n % 2 else alice).id, f"m{n}").json()["id"]
        for n in range(25)
    ]
    eventually(lambda: len(stored_ids(gateway, alice)) == 25)
    pages = []
    url: str | None = f"/get_messages?with_user={bob.id}&limit=4"
    while url:
        response = gateway.get(url, headers=alice.headers)
        pages.append(response.json())
        url = response.links.get("next", {}).get("url")
        if url:
            assert url.startswith(str(gateway.base_url) + "/get_messages?")
    seen = [m["id"] for page in pages for m in page]
    assert len(pages) == 7
    assert sorted(seen) == sorted(sent)
    assert len(seen) == len(set(seen))


def test_the_sample_message_needs_no_token(gateway: httpx.Client) -> None:
    response = gateway.get("/receive_message")
    assert response.status_code == 200
    assert response.json() == SAMPLE


def test_a_killed_workers_job_is_picked_up_again_within_the_bound(
    gateway: httpx.Client, running_stack, redis_url: str
) -> None:
    """Hold the lock the persist job takes, so that the job is mid-flight when its worker
    dies with SIGKILL (worker and scheduler together, as in a container kill). The job
    runs again on the other worker and finishes cleanly."""
    alice, bob = new_user(gateway), new_user(gateway)
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    database = libpq(running_stack.config.messages_database_url)
    name = None
    try:
        with psycopg.connect(database, autocommit=True) as blocker:
            blocker.execute("SELECT pg_advisory_lock(%s)", (SEQ_LOCK,))
            sent = send(gateway, alice, bob.id, "survive a crash").json()
            busy = eventually(
                lambda: [w for w in Worker.all(queue=queue) if w.get_current_job_id()],
                timeout=10,
            )
            victim = busy[0]
            job_id = victim.get_current_job_id()
            name = next(n for n, p in running_stack.processes.items() if p.pid == victim.pid)
            assert victim.pid is not None
            os.killpg(victim.pid, signal.SIGKILL)
            running_stack.processes[name].wait()
            killed_at = time.monotonic()
            blocker.execute("SELECT pg_advisory_unlock(%s)", (SEQ_LOCK,))
        # Heartbeat 4 s, then the next maintenance pass (each 1 s) requeues it.
        eventually(lambda: stored_ids(gateway, bob) == [sent["id"]], timeout=15)
        assert time.monotonic() - killed_at < 10
        eventually(lambda: not connection.exists(f"rq:job:{job_id}"), timeout=5)
        assert job_id not in FailedJobRegistry(queue=queue).get_job_ids()
    finally:
        if name is not None:
            restarted = next(p for p in stack_processes(running_stack.config) if p.name == name)
            popen = running_stack.processes[name] = spawn(restarted)
            # Later tests find the stack whole: the new worker is taking jobs.
            eventually(lambda: popen.pid in {w.pid for w in Worker.all(queue=queue)}, timeout=30)
        connection.close()


@pytest.mark.parametrize("path", ["/messages/0", "/messages/abc", f"/messages/{2**64}"])
def test_bad_message_ids_are_422(gateway: httpx.Client, path: str) -> None:
    alice = new_user(gateway)
    assert gateway.get(path, headers=alice.headers).status_code == 422
