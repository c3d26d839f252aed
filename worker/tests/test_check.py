"""The worker's health probe."""

import socket

import redis

from worker import check
from worker.main import build_worker


def test_the_probe_wants_a_live_worker_on_this_host(
    worker_settings, job_context, unit_redis_url
) -> None:
    assert check.problems(worker_settings) == [f"no worker registered on {socket.gethostname()}"]
    connection = redis.Redis.from_url(unit_redis_url)
    worker = build_worker(job_context, connection)
    worker.register_birth()
    try:
        assert check.problems(worker_settings) == []
    finally:
        worker.register_death()
        connection.close()
