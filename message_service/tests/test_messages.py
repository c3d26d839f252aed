"""message_service in process, with real Postgres, Redis and an in-process RQ worker."""

import asyncio
import uuid

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from common.ratelimit import Rate
from message_service.app import create_app as create_message_service
from message_service.persistence.queued import PENDING_KEY, QUEUE_NAME
from message_service.tests.service import as_user, new_user_id, send
from stack.processes import free_port
from tests.harness.apps import internal_client


async def test_a_send_is_queued_with_its_final_id_then_persisted(client, users, drain) -> None:
    alice, bob, carol = users
    response = await send(client, alice, bob, "Привет, Bob")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["message"] == "Message sent successfully"
    assert (body["sender_id"], body["receiver_id"]) == (alice, bob)
    queued = await client.get(f"/messages/{body['id']}", headers=as_user(bob))
    assert queued.json()["status"] == "queued"
    assert queued.json()["content"] == "Привет, Bob"

    drain()

    persisted = await client.get(f"/messages/{body['id']}", headers=as_user(alice))
    assert persisted.json()["status"] == "persisted"
    for reader in (alice, bob):
        listed = (await client.get("/messages", headers=as_user(reader))).json()
        assert [m["id"] for m in listed] == [body["id"]]
        assert listed[0]["content"] == "Привет, Bob"
        assert listed[0]["created_at"] == persisted.json()["created_at"]
    assert (await client.get("/messages", headers=as_user(carol))).json() == []
    assert (await client.get(f"/messages/{body['id']}", headers=as_user(carol))).status_code == 404


async def test_another_users_queued_message_is_404_like_an_unknown_id(client, users) -> None:
    alice, bob, carol = users
    sent = (await send(client, alice, bob)).json()
    stranger = await client.get(f"/messages/{sent['id']}", headers=as_user(carol))
    unknown = await client.get("/messages/999999999999", headers=as_user(carol))
    assert stranger.status_code == unknown.status_code == 404
    assert stranger.json() == unknown.json()


async def test_sending_as_someone_else_is_403(client, users) -> None:
    alice, bob, carol = users
    response = await send(client, alice, bob, sender_id=carol)
    assert response.status_code == 403
    assert (await send(client, alice, bob, sender_id=alice)).status_code == 202


async def test_notes_to_self_are_allowed(client, users, drain) -> None:
    alice, _, _ = users
    sent = (await send(client, alice, alice, "remember the milk")).json()
    drain()
    listed = (await client.get("/messages", headers=as_user(alice))).json()
    assert [m["id"] for m in listed] == [sent["id"]]
    with_self = (await client.get(f"/messages?with_user={alice}", headers=as_user(alice))).json()
    assert [m["id"] for m in with_self] == [sent["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "", "receiver_id": 1}, "content"),
        ({"content": "   ", "receiver_id": 1}, "content"),
        ({"content": "a\x00b", "receiver_id": 1}, "content"),
        ('{"content": "\\ud800", "receiver_id": 1}', "content"),
        ('{"content": "hi", "receiver_id": 1', "body"),
        ({"content": 12, "receiver_id": 1}, "content"),
        ({"content": "hi", "receiver_id": "1"}, "receiver_id"),
        ({"content": "hi", "receiver_id": -1}, "receiver_id"),
        ({"content": "hi", "receiver_id": 2**64}, "receiver_id"),
        ({"content": "hi"}, "receiver_id"),
    ],
)
async def test_bad_sends_are_422_naming_the_field(client, users, body, field) -> None:
    alice, _, _ = users
    headers = {**as_user(alice), "content-type": "application/json"}
    if isinstance(body, str):
        response = await client.post("/messages", content=body, headers=headers)
    else:
        response = await client.post("/messages", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


async def test_content_longer_than_the_limit_is_422(client, users, message_settings) -> None:
    alice, bob, _ = users
    limit = message_settings.max_content_length
    assert (await send(client, alice, bob, "x" * limit)).status_code == 202
    response = await send(client, alice, bob, "x" * (limit + 1))
    assert response.status_code == 422
    assert f"at most {limit}" in response.json()["detail"]


async def test_an_unknown_receiver_cannot_be_checked_while_user_service_is_down(
    client, users
) -> None:
    alice, _, _ = users
    response = await send(client, alice, new_user_id())
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"


async def test_a_repeated_idempotency_key_returns_the_first_answer(
    client, users, drain, message_app
) -> None:
    alice, bob, _ = users
    key = {"headers": {"Idempotency-Key": f"send-{uuid.uuid4()}"}}
    first = await send(client, alice, bob, "once", **key)
    again = await send(client, alice, bob, "once", **key)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotency-replayed"] == "true"
    other_body = await send(client, alice, bob, "something else", **key)
    assert other_body.status_code == 409
    # Another caller's identical key is another request.
    assert (await send(client, bob, alice, "once", **key)).json()["id"] != first.json()["id"]
    drain()
    listed = (await client.get(f"/messages?with_user={bob}", headers=as_user(alice))).json()
    assert [m["content"] for m in listed].count("once") == 2


async def test_sends_over_the_callers_rate_are_429_and_not_queued(
    client, users, drain, message_app, monkeypatch
) -> None:
    alice, bob, carol = users
    monkeypatch.setattr(
        message_app.state.service.batcher.queue, "send_rate", Rate(limit=3, period=60)
    )
    drain()
    # Sent together, so that admitted and refused sends share batches.
    answers = await asyncio.gather(*(send(client, alice, bob, f"n{n}") for n in range(5)))
    assert sorted(a.status_code for a in answers) == [202, 202, 202, 429, 429]
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.json()["code"] == "too_many_requests"
        assert refused.headers["retry-after"] in ("19", "20")
    # Another caller has a budget of its own.
    assert (await send(client, carol, bob, "mine")).status_code == 202
    drain()
    listed = (await client.get(f"/messages?with_user={bob}", headers=as_user(alice))).json()
    admitted = [a.json()["id"] for a in answers if a.status_code == 202]
    assert sorted(m["id"] for m in listed) == sorted(admitted)


async def test_concurrent_sends_share_jobs_and_are_each_stored_once(
    client, users, drain, unit_redis_url
) -> None:
    alice, bob, _ = users
    connection = redis.Redis.from_url(unit_redis_url)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    drain()
    responses = await asyncio.gather(*(send(client, alice, bob, f"m{n}") for n in range(60)))
    assert all(r.status_code == 202 for r in responses)
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 60
    assert queue.count < 60  # group commit: several messages per job
    drain()
    listed = (
        await client.get(f"/messages?with_user={bob}&limit=1000", headers=as_user(alice))
    ).json()
    assert sorted(m["id"] for m in listed) == sorted(ids)
    assert connection.hmget(PENDING_KEY, [str(i) for i in ids]) == [None] * len(ids)
    connection.close()


async def test_paging_sees_every_message_once_in_order(client, users, drain) -> None:
    alice, bob, carol = users
    sent = []
    for n in range(7):
        sent.append((await send(client, alice, bob, f"a{n}")).json()["id"])
        drain()
        sent.append((await send(client, bob, alice, f"b{n}")).json()["id"])
        drain()
    await send(client, carol, alice, "not in the conversation")
    drain()
    seen = []
    url = f"/messages?with_user={bob}&limit=3"
    while url:
        response = await client.get(url, headers=as_user(alice))
        assert response.status_code == 200
        assert len(response.json()) <= 3
        seen += [m["id"] for m in response.json()]
        url = response.links.get("next", {}).get("url")
    assert seen == sent
    everything = (await client.get("/messages?limit=1000", headers=as_user(alice))).json()
    assert len(everything) == len(sent) + 1
    # The cursor after the last page brings exactly what was stored since.
    tail = response.headers["x-next-cursor"]
    empty = await client.get(f"/messages?with_user={bob}&cursor={tail}", headers=as_user(alice))
    assert empty.json() == []
    assert empty.headers["x-next-cursor"] == tail
    later = (await send(client, bob, alice, "later")).json()["id"]
    drain()
    since = await client.get(f"/messages?with_user={bob}&cursor={tail}", headers=as_user(alice))
    assert [m["id"] for m in since.json()] == [later]


async def test_reading_back_from_the_newest_page_sees_every_message_once(
    client, users, drain
) -> None:
    alice, bob, carol = users
    sent = []
    for n in range(7):
        sent.append((await send(client, alice, bob, f"a{n}")).json()["id"])
        sent.append((await send(client, bob, alice, f"b{n}")).json()["id"])
        drain()
    await send(client, carol, alice, "not in the conversation")
    drain()
    pages = []
    url = f"/messages?with_user={bob}&limit=4&before={2**63 - 1}"
    while url:
        response = await client.get(url, headers=as_user(alice))
        assert response.status_code == 200
        pages.append([m["id"] for m in response.json()])
        assert "next" not in response.links
        url = response.links.get("prev", {}).get("url")
    # Newest page first, each page oldest first: 14 messages as 4, 4, 4, 2.
    assert [len(page) for page in pages] == [4, 4, 4, 2]
    assert [i for page in reversed(pages) for i in page] == sent
    # Reading on from the newest page's X-Next-Cursor brings what is stored later.
    newest = await client.get(
        f"/messages?with_user={bob}&limit=4&before={2**63 - 1}", headers=as_user(alice)
    )
    later = (await send(client, bob, alice, "later")).json()["id"]
    drain()
    since = await client.get(
        f"/messages?with_user={bob}&cursor={newest.headers['x-next-cursor']}",
        headers=as_user(alice),
    )
    assert [m["id"] for m in since.json()] == [later]
    # All of the caller's conversations read back the same way.
    everything = await client.get(f"/messages?limit=3&before={2**63 - 1}", headers=as_user(alice))
    assert [m["content"] for m in everything.json()] == ["b6", "not in the conversation", "later"]


async def test_cursor_and_before_together_read_back_between_them(client, users, drain) -> None:
    alice, bob, _ = users
    for n in range(6):
        await send(client, alice, bob, f"m{n}")
    drain()
    everything = await client.get(f"/messages?with_user={bob}", headers=as_user(alice))
    cursors = [m["cursor"] for m in everything.json()]
    pages = []
    url = f"/messages?with_user={bob}&limit=2&cursor={cursors[1]}&before={cursors[5]}"
    while url:
        response = await client.get(url, headers=as_user(alice))
        assert response.status_code == 200
        pages.append([m["cursor"] for m in response.json()])
        url = response.links.get("prev", {}).get("url")
    # After m1 and before m5: m2, m3, m4, read back two at a time.
    assert pages == [cursors[3:5], cursors[2:3]]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "cursor=-1",
        "with_user=0",
        "cursor=x",
        "before=0",
    ],
)
async def test_bad_list_parameters_are_422(client, users, query) -> None:
    alice, _, _ = users
    assert (await client.get(f"/messages?{query}", headers=as_user(alice))).status_code == 422


async def test_a_missing_identity_is_401(client) -> None:
    assert (await client.get("/messages")).status_code == 401


async def test_a_key_repeated_after_its_message_is_stored_is_answered_from_postgres(
    client, users, drain, unit_redis_url
) -> None:
    alice, bob, _ = users
    key = {"Idempotency-Key": f"stored-{uuid.uuid4()}"}
    first = await send(client, alice, bob, "kept", headers=key)
    drain()
    # Nothing of the send is left in Redis: the message row answers.
    connection = redis.Redis.from_url(unit_redis_url)
    for record in connection.scan_iter(f"anonchat:idem:{alice}:*"):
        connection.delete(record)
    connection.close()
    again = await send(client, alice, bob, "kept", headers=key)
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotency-replayed"] == "true"
    reused = await send(client, alice, bob, "not the same", headers=key)
    assert reused.status_code == 409
    drain()
    listed = (await client.get(f"/messages?with_user={bob}", headers=as_user(alice))).json()
    assert [m["content"] for m in listed] == ["kept"]


@pytest.mark.parametrize("key", ["", "x" * 201, "tab\there", "кириллица".encode()])
async def test_a_malformed_idempotency_key_is_422(client, users, key) -> None:
    alice, bob, _ = users
    response = await send(client, alice, bob, headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"


@pytest.mark.parametrize("keyed", [False, True])
async def test_without_redis_every_endpoint_is_503_with_retry_after(
    message_settings, users, keyed
) -> None:
    """Never a 500: Redis does not answer (nothing listens on its port)."""
    app = create_message_service(
        message_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    )
    alice, bob, _ = users
    headers = {"Idempotency-Key": str(uuid.uuid4())} if keyed else {}
    async with app.router.lifespan_context(app), internal_client(app) as client:
        app.state.service.users.remember(bob)
        answers = [
            await send(client, alice, bob, headers=headers),
            await client.get("/messages/1", headers=as_user(alice)),
        ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["code"] == "service_unavailable"
