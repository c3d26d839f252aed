"""Faults on the real processes: nothing acknowledged is lost, nothing is stored twice.

Each test runs a stack of its own on throwaway Postgres and Redis servers (it stops and
kills them), drives sends through the gateway, injects one fault, and checks the
invariants: every message acknowledged with a 202 is stored exactly once with its
content, sender and receiver; nothing refused is stored; ids are unique; and a reader
paging with the cursor while all this happens sees each of its messages exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer

from common import databases
from common.ratelimit import Rate
from message_service.config import Settings as MessageSettings
from message_service.persistence import QUEUE_NAME, QueuedMessage
from message_service.queue import JobOptions, MessageQueue, Send
from stack import infra, servers
from stack.processes import (
    ROOT,
    Process,
    StackConfig,
    spawn,
    stack_processes,
    stop,
    wait_healthy,
)
from tests.api import User, eventually, new_user
from tests.fixtures import stack_config_for_tests

USERS = 8
RETRY_INTERVALS = MessageSettings().retry_intervals


@dataclass
class Sent:
    """What the API answered to each send."""

    acknowledged: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    # Refused content -> the status code (0: no answer).
    refused: dict[str, int] = field(default_factory=dict)


@dataclass
class FaultStack:
    """A whole stack on servers of its own, whose parts a test can stop and restart."""

    postgres: servers.PostgresServer
    redis: servers.RedisServer
    config: StackConfig
    processes: dict[str, Process]
    running: dict[str, subprocess.Popen[bytes]]

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway_port}"

    @property
    def messages_database(self) -> str:
        return self.config.messages_database_url.replace("+psycopg", "")

    def start(self, name: str) -> None:
        process = self.processes[name]
        self.running[name] = spawn(process)
        if process.health_url:
            wait_healthy(process.health_url, timeout=30, process=self.running[name])

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send ``sig`` to the process (SIGKILL: with its children, as a container kill)."""
        popen = self.running[name]
        if sig == signal.SIGKILL:
            os.killpg(popen.pid, sig)
        else:
            popen.send_signal(sig)
        return popen.wait(timeout=60)

    def stored(self) -> dict[int, tuple[str, int, int]]:
        with psycopg.connect(self.messages_database) as connection:
            rows = connection.execute(
                "SELECT id, content, sender_id, receiver_id FROM messages"
            ).fetchall()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}


@pytest.fixture
def fault_stack() -> Iterator[FaultStack]:
    root = servers.data_folder()
    with (
        servers.throwaway_postgres(root) as postgres,
        servers.throwaway_redis(root) as redis_server,
    ):
        urls = {}
        for service, name in (("user_service", "users"), ("message_service", "messages")):
            urls[service] = infra.with_database(postgres.url, f"anonchat_{name}")
            databases.create_database(urls[service])
            databases.upgrade(ROOT / service, urls[service])
        config = stack_config_for_tests(
            urls["user_service"], urls["message_service"], redis_server.url
        )
        processes = {process.name: process for process in stack_processes(config)}
        stack = FaultStack(postgres, redis_server, config, processes, {})
        try:
            for name in processes:
                stack.start(name)
            yield stack
        finally:
            for popen in reversed(stack.running.values()):
                stop(popen)
    subprocess.run(["rm", "-rf", str(root)], check=False)


def attempts_so_far(stack: FaultStack) -> list[int]:
    """How many times each job still waiting in Redis has been retried."""
    with redis.Redis.from_url(stack.redis.url) as client:
        queue = Queue(QUEUE_NAME, connection=client, serializer=JSONSerializer)
        scheduled = ScheduledJobRegistry(queue=queue).get_job_ids()
        jobs = Job.fetch_many(
            [*queue.get_job_ids(), *scheduled], connection=client, serializer=JSONSerializer
        )
        return [
            len(RETRY_INTERVALS) - job.retries_left
            for job in jobs
            if job is not None and job.retries_left is not None
        ]


def users(stack: FaultStack) -> list[User]:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        return [new_user(client, f"f{n}") for n in range(USERS)]


async def send_burst(stack: FaultStack, people: list[User], count: int, sent: Sent) -> None:
    """``count`` sends between ``people``, 16 at a time, recording every answer."""
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=15, limits=limits) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)

        async def sender() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                author, reader = people[n % len(people)], people[(n * 7 + 3) % len(people)]
                content = f"{n} {uuid.uuid4()}"
                try:
                    response = await client.post(
                        "/send_message",
                        json={"content": content, "receiver_id": reader.id},
                        headers=author.headers,
                    )
                except httpx.TransportError:
                    sent.refused[content] = 0
                    continue
                if response.status_code == 202:
                    sent.acknowledged[response.json()["id"]] = (content, author.id, reader.id)
                else:
                    assert response.status_code in (503, 504), response.text
                    sent.refused[content] = response.status_code

        await asyncio.gather(*(sender() for _ in range(16)))


def burst(stack: FaultStack, people: list[User], count: int, sent: Sent) -> None:
    asyncio.run(send_burst(stack, people, count, sent))


class Pager(threading.Thread):
    """A reader paging through its messages with the cursor while everything runs."""

    def __init__(self, stack: FaultStack, reader: User) -> None:
        super().__init__(daemon=True)
        self.url = stack.gateway_url
        self.reader = reader
        self.seen: list[int] = []
        self.cursor = "0"
        self.finish = threading.Event()

    def page(self, client: httpx.Client) -> bool:
        """Read from the cursor on; True when the reader is at the end."""
        response = client.get(
            f"/get_messages?limit=100&cursor={self.cursor}", headers=self.reader.headers
        )
        if response.status_code != 200:
            return True
        self.seen += [message["id"] for message in response.json()]
        self.cursor = response.headers["x-next-cursor"]
        return "next" not in response.links

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15) as client:
            while not self.finish.is_set():
                try:
                    at_end = self.page(client)
                except httpx.TransportError:
                    at_end = True
                if at_end:
                    time.sleep(0.02)

    def catch_up(self) -> list[int]:
        self.finish.set()
        self.join(30)
        with httpx.Client(base_url=self.url, timeout=15) as client:
            while not self.page(client):
                pass
        return self.seen


def settle(stack: FaultStack, sent: Sent, timeout: float = 60) -> dict[int, tuple[str, int, int]]:
    """Wait until every acknowledged message is stored; return what is stored."""

    def all_stored() -> dict[int, tuple[str, int, int]] | None:
        stored = stack.stored()
        return stored if stored.keys() >= sent.acknowledged.keys() else None

    try:
        return eventually(all_stored, timeout=timeout, interval=0.2)
    except AssertionError:
        missing = sent.acknowledged.keys() - stack.stored().keys()
        with redis.Redis.from_url(stack.redis.url) as client:
            depth = client.llen(f"rq:queue:{QUEUE_NAME}")
        exits = {name: popen.poll() for name, popen in stack.running.items()}
        raise AssertionError(
            f"{len(missing)} acknowledged messages not stored after {timeout} s "
            f"(queue depth {depth}, process exit codes {exits})"
        ) from None


Report = Callable[[str], None]


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Report:
    """Write a line to the terminal, past pytest's output capture: the fault tests' figures
    belong in every run's output."""
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if terminal is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line(line)

    return write


def check_invariants(
    report: Report,
    name: str,
    sent: Sent,
    stored: dict[int, tuple[str, int, int]],
    pager: Pager | None = None,
) -> None:
    contents = [content for content, _, _ in stored.values()]
    lost = [i for i in sent.acknowledged if i not in stored]
    altered = [i for i, row in sent.acknowledged.items() if i in stored and stored[i] != row]
    duplicates = len(contents) - len(set(contents))
    refused_stored = [content for content in contents if content in sent.refused]
    unexpected = [
        i for i in stored if i not in sent.acknowledged and stored[i][0] not in sent.refused
    ]
    report(
        f"{name}: acknowledged={len(sent.acknowledged)} persisted={len(stored)} "
        f"duplicates={duplicates} lost={len(lost)} altered={len(altered)} "
        f"refused={len(sent.refused)} ({Counter(sent.refused.values())}) "
        f"refused_but_stored={len(refused_stored)}"
    )
    assert sent.acknowledged
    assert lost == []
    assert altered == []
    assert duplicates == 0
    assert refused_stored == []
    assert unexpected == []
    if pager is not None:
        mine = {
            i
            for i, (_, sender, receiver) in sent.acknowledged.items()
            if pager.reader.id in (sender, receiver)
        }
        seen = pager.catch_up()
        report(f"{name}: the paging reader saw {len(seen)} of its {len(mine)} messages")
        assert len(seen) == len(set(seen)), "a message was seen twice"
        assert set(seen) == mine


def test_a_worker_killed_mid_burst_loses_nothing(fault_stack: FaultStack, report: Report) -> None:
    people = users(fault_stack)
    pager = Pager(fault_stack, people[3])
    pager.start()
    sent = Sent()
    loader = threading.Thread(target=burst, args=(fault_stack, people, 2000, sent))
    loader.start()
    eventually(lambda: len(fault_stack.stored()) > 300, timeout=30)
    fault_stack.kill("worker.1")
    loader.join(120)
    # The survivor carries on; the dead worker's job is requeued after its heartbeat.
    stored = settle(fault_stack, sent)
    check_invariants(report, "worker SIGKILL", sent, stored, pager)


def test_sends_go_on_while_postgres_is_down(fault_stack: FaultStack, report: Report) -> None:
    people = users(fault_stack)
    pager = Pager(fault_stack, people[5])
    pager.start()
    sent = Sent()
    burst(fault_stack, people, 300, sent)
    settle(fault_stack, sent)
    fault_stack.postgres.stop()
    down_since = time.monotonic()
    during = Sent()
    burst(fault_stack, people, 600, during)
    assert len(during.acknowledged) == 600, f"refused while Postgres was down: {during.refused}"
    with redis.Redis.from_url(fault_stack.redis.url) as client:
        assert (
            Queue(QUEUE_NAME, connection=client).count
            + len(client.zrange(f"rq:scheduled:{QUEUE_NAME}", 0, -1))
            > 0
        )
    time.sleep(max(0.0, 5 - (time.monotonic() - down_since)))
    down_for = time.monotonic() - down_since
    attempts = attempts_so_far(fault_stack)
    fault_stack.postgres.start()
    sent.acknowledged |= during.acknowledged
    stored = settle(fault_stack, sent)
    # Backing off: no job was tried more often than its retry intervals allow.
    allowed = sum(1 for total in itertools.accumulate(RETRY_INTERVALS) if total <= down_for)
    report(
        f"postgres down {down_for:.1f} s: {len(attempts)} jobs waiting, retried at most "
        f"{max(attempts, default=0)} times each (the intervals allow {allowed})"
    )
    assert attempts
    # One retry of slack: the test's clock and the job's first failure differ a little.
    assert max(attempts) <= allowed + 1, "workers retried faster than the backoff allows"
    assert all(p.poll() is None for n, p in fault_stack.running.items() if n.startswith("worker"))
    check_invariants(report, "postgres down", sent, stored, pager)


def test_a_redis_crash_loses_no_acknowledged_message(
    fault_stack: FaultStack, report: Report
) -> None:
    """With appendfsync always, Redis fsyncs its append-only file before it answers: a
    message whose 202 was sent survives Redis being killed (SIGKILL) and restarted."""
    people = users(fault_stack)
    sent = Sent()
    loader = threading.Thread(target=burst, args=(fault_stack, people, 1500, sent))
    loader.start()
    eventually(lambda: len(sent.acknowledged) > 300, timeout=30)
    fault_stack.redis.stop(kill=True)
    time.sleep(1)
    fault_stack.redis.start()
    loader.join(120)
    after = Sent()
    burst(fault_stack, people, 200, after)
    assert len(after.acknowledged) == 200, "sends did not recover after Redis came back"
    sent.acknowledged |= after.acknowledged
    stored = settle(fault_stack, sent)
    check_invariants(report, "redis SIGKILL + restart", sent, stored)


@pytest.mark.parametrize(
    ("service", "path", "body"),
    [
        ("message_service", "/get_messages", None),
        ("user_service", "/login", {"username": "someone", "password": "something"}),
    ],
)
def test_a_stopped_service_is_a_quick_503_and_recovers_by_itself(
    fault_stack: FaultStack, service: str, path: str, body: dict[str, str] | None
) -> None:
    people = users(fault_stack)
    with httpx.Client(base_url=fault_stack.gateway_url, timeout=30) as client:

        def call() -> httpx.Response:
            if body is None:
                return client.get(path, headers=people[0].headers)
            return client.post(path, json=body)

        assert call().status_code in (200, 401)
        fault_stack.kill(service, signal.SIGKILL)
        started = time.monotonic()
        down = call()
        assert down.status_code == 503
        assert down.json()["code"] == "service_unavailable"
        assert time.monotonic() - started < 2
        assert client.get("/readyz").status_code == 503
        fault_stack.start(service)
        eventually(lambda: call().status_code in (200, 401), timeout=10)
        assert client.get("/readyz").status_code == 200


def test_sigterm_lets_a_worker_finish_its_job(fault_stack: FaultStack, report: Report) -> None:
    people = users(fault_stack)
    sent = Sent()
    loader = threading.Thread(target=burst, args=(fault_stack, people, 2000, sent))
    loader.start()
    eventually(lambda: len(fault_stack.stored()) > 200, timeout=30)
    assert fault_stack.kill("worker.1", signal.SIGTERM) == 0
    loader.join(120)
    stored = settle(fault_stack, sent)
    check_invariants(report, "worker SIGTERM", sent, stored)
    with redis.Redis.from_url(fault_stack.redis.url) as client:
        assert FailedJobRegistry(QUEUE_NAME, connection=client).count == 0


async def test_a_poison_message_fails_alone_and_can_be_requeued(
    fault_stack: FaultStack, report: Report
) -> None:
    people = users(fault_stack)
    poison = QueuedMessage(
        id=10**15,
        content="NUL \x00 cannot be stored",
        sender_id=people[0].id,
        receiver_id=people[1].id,
        created_at="2026-01-01T00:00:00+00:00",
    )
    with redis.Redis.from_url(fault_stack.redis.url) as client:
        queue = MessageQueue(
            client, JobOptions(5, [0], 3600), max_batch=100, send_rate=Rate(limit=1, period=1)
        )
        job_id = queue.put([Send(poison)]).job_id
        sent = Sent()
        await send_burst(fault_stack, people, 100, sent)
        stored = settle(fault_stack, sent)
        check_invariants(report, "poison message", sent, stored)
        failed = FailedJobRegistry(QUEUE_NAME, connection=client, serializer=JSONSerializer)
        eventually(lambda: job_id in failed.get_job_ids())
        reason = failed.get_job_ids()
        assert reason == [job_id]
        with httpx.Client(base_url=fault_stack.gateway_url) as http:
            status = http.get(f"/messages/{poison['id']}", headers=people[1].headers).json()
        assert status["status"] == "failed"
        requeue = subprocess.run(
            [
                str(Path(sys.executable).parent / "rq"),
                "requeue",
                "--queue",
                QUEUE_NAME,
                "--all",
                "-u",
                fault_stack.redis.url,
                "-S",
                "rq.serializers.JSONSerializer",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "Requeueing 1 jobs" in requeue.stdout, requeue.stdout
        eventually(lambda: job_id in failed.get_job_ids())
        assert poison["id"] not in fault_stack.stored()
