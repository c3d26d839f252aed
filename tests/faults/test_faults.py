"""Faults on the real processes, under retrying clients: nothing acknowledged is lost or
stored twice, no answer is a 500, every send is eventually answered 202 with one id, and
every conversation is stored in the order its messages were accepted.

Each test runs a stack of its own on throwaway Postgres and Redis servers (it stops and
kills them) and prints, for each fault: acknowledged, stored, lost, duplicated, 500s,
inversions and, for Postgres, the recovery time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from common.ratelimit import Rate
from message_service.enqueue import JobOptions, MessageQueue, Submission
from message_service.persistence.queued import QUEUE_NAME, PendingMessage
from stack import infra
from tests.api import User, eventually, new_user
from tests.events import Follower
from tests.faults.checks import Pager, Report, check, check_stream, report_recovery, settle
from tests.faults.client import RetryingLoad
from tests.faults.stack import FaultStack

PEOPLE = 8
# How long Postgres stays down, and the other faults' pause before a restart.
POSTGRES_DOWN_SECONDS = 6.0
RESTART_AFTER_SECONDS = 1.0
LOAD_AFTER_FAULT_SECONDS = 3.0


def people(stack: FaultStack) -> list[User]:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        return [new_user(client, f"f{n}") for n in range(PEOPLE)]


def follow(stack: FaultStack, user: User) -> Follower:
    """A client of ``user``'s stream that reconnects through every fault."""
    follower = Follower(stack.gateway_url, user.headers, user_id=user.id)
    follower.start()
    eventually(lambda: follower.connections, timeout=10)
    return follower


def kill_and_restart(name: str, sig: signal.Signals) -> Callable[[FaultStack], None]:
    def fault(stack: FaultStack) -> None:
        code = stack.kill(name, sig)
        if sig == signal.SIGTERM:
            assert code == 0, f"{name} did not stop cleanly on SIGTERM"
        time.sleep(RESTART_AFTER_SECONDS)
        stack.start(name)

    return fault


def redis_crash(stack: FaultStack) -> None:
    stack.redis.stop(kill=True)
    time.sleep(RESTART_AFTER_SECONDS)
    stack.redis.start()


# Each fault returns when the stack is whole again.
FAULTS: dict[str, Callable[[FaultStack], None]] = {
    "worker SIGKILL": kill_and_restart("worker.1", signal.SIGKILL),
    "worker SIGTERM": kill_and_restart("worker.1", signal.SIGTERM),
    "redis SIGKILL": redis_crash,
    "message_service SIGKILL": kill_and_restart("message_service", signal.SIGKILL),
    "gateway SIGKILL": kill_and_restart("gateway", signal.SIGKILL),
    "user_service SIGKILL": kill_and_restart("user_service", signal.SIGKILL),
}


def postgres_outage(stack: FaultStack) -> datetime:
    """Postgres crashes (stop -m immediate) and answers again after a while; when it did,
    by its own clock."""
    stack.postgres.stop("immediate")
    assert not infra.postgres_answers(stack.postgres.url), "Postgres did not stop"
    time.sleep(POSTGRES_DOWN_SECONDS)
    stack.postgres.start()
    return stack.database_now()


def no_failed_jobs(stack: FaultStack) -> None:
    with redis.Redis.from_url(stack.redis.url) as client:
        failed = FailedJobRegistry(QUEUE_NAME, connection=client, serializer=JSONSerializer)
        assert failed.count == 0, f"failed jobs: {failed.get_job_ids()}"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_under_retrying_clients(
    fault_stack: FaultStack, report: Report, fault: str
) -> None:
    crowd = people(fault_stack)
    pager = Pager(fault_stack, crowd[3])
    pager.start()
    follower = follow(fault_stack, crowd[4])
    with RetryingLoad(fault_stack.gateway_url, crowd) as load:
        eventually(lambda: load.acknowledged_so_far() > 200, timeout=30)
        FAULTS[fault](fault_stack)
        time.sleep(LOAD_AFTER_FAULT_SECONDS)
    stored = settle(fault_stack, load.ledger)
    check(report, fault, load.ledger, stored)
    pager.check(report, fault, stored)
    check_stream(report, fault, follower, stored)
    no_failed_jobs(fault_stack)


def test_a_postgres_outage_under_retrying_clients(fault_stack: FaultStack, report: Report) -> None:
    crowd = people(fault_stack)
    pager = Pager(fault_stack, crowd[5])
    pager.start()
    follower = follow(fault_stack, crowd[4])
    with RetryingLoad(fault_stack.gateway_url, crowd) as load:
        eventually(lambda: load.acknowledged_so_far() > 200, timeout=30)
        answering_since = postgres_outage(fault_stack)
        time.sleep(LOAD_AFTER_FAULT_SECONDS)
    stored = settle(fault_stack, load.ledger)
    check(report, "postgres down", load.ledger, stored)
    report_recovery(report, "postgres down", stored, answering_since)
    pager.check(report, "postgres down", stored)
    check_stream(report, "postgres down", follower, stored)
    no_failed_jobs(fault_stack)


def test_a_bad_day_every_fault_in_turn_under_one_load(
    fault_stack: FaultStack, report: Report
) -> None:
    crowd = people(fault_stack)
    follower = follow(fault_stack, crowd[4])
    with RetryingLoad(fault_stack.gateway_url, crowd) as load:
        eventually(lambda: load.acknowledged_so_far() > 200, timeout=30)
        for name in ("worker SIGKILL", "worker SIGTERM", "redis SIGKILL"):
            FAULTS[name](fault_stack)
            time.sleep(LOAD_AFTER_FAULT_SECONDS)
        answering_since = postgres_outage(fault_stack)
        time.sleep(LOAD_AFTER_FAULT_SECONDS)
        for name in ("message_service SIGKILL", "gateway SIGKILL", "user_service SIGKILL"):
            FAULTS[name](fault_stack)
            time.sleep(LOAD_AFTER_FAULT_SECONDS)
    stored = settle(fault_stack, load.ledger)
    check(report, "a bad day", load.ledger, stored)
    report_recovery(report, "a bad day", stored, answering_since)
    check_stream(report, "a bad day", follower, stored)
    no_failed_jobs(fault_stack)


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
    crowd = people(fault_stack)
    with httpx.Client(base_url=fault_stack.gateway_url, timeout=30) as client:

        def call() -> httpx.Response:
            if body is None:
                return client.get(path, headers=crowd[0].headers)
            return client.post(path, json=body)

        assert call().status_code in (200, 401)
        fault_stack.kill(service, signal.SIGKILL)
        started = time.monotonic()
        down = call()
        assert down.status_code == 503
        assert down.json()["code"] == "service_unavailable"
        assert down.headers["retry-after"] == "1"
        assert time.monotonic() - started < 2
        assert client.get("/readyz").status_code == 503
        fault_stack.start(service)
        eventually(lambda: call().status_code in (200, 401), timeout=10)
        assert client.get("/readyz").status_code == 200


async def test_a_poison_message_fails_alone_and_can_be_requeued(
    fault_stack: FaultStack, report: Report
) -> None:
    crowd = people(fault_stack)
    poison = PendingMessage(
        id=10**15,
        content="NUL \x00 cannot be stored",
        sender_id=crowd[0].id,
        receiver_id=crowd[1].id,
        created_at="2026-01-01T00:00:00+00:00",
    )
    with redis.Redis.from_url(fault_stack.redis.url) as client:
        queue = MessageQueue(
            client, JobOptions([0], 3600), max_batch=100, send_rate=Rate(limit=1, period=1)
        )
        job_id, _ = queue.enqueue([Submission(poison)])
        with RetryingLoad(fault_stack.gateway_url, crowd) as load:
            eventually(lambda: load.acknowledged_so_far() > 100, timeout=30)
        stored = settle(fault_stack, load.ledger)
        check(report, "poison message", load.ledger, stored)
        failed = FailedJobRegistry(QUEUE_NAME, connection=client, serializer=JSONSerializer)
        eventually(lambda: job_id in failed.get_job_ids())
        assert failed.get_job_ids() == [job_id]
        with httpx.Client(base_url=fault_stack.gateway_url) as http:
            status = http.get(f"/messages/{poison['id']}", headers=crowd[1].headers).json()
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
