"""The worker's health probe."""

import socket

import redis

from worker import check
from worker.main import build_worker


def test_the_probe_wants_a_live_worker_on_this_host(worker_settings, unit_redis_url) -> None:
    assert check.problems() == [f"no worker registered on {socket.gethostname()}"]
    connection = redis.Redis.from_url(unit_redis_url)
    worker = build_worker(worker_settings, connection)
    worker.register_birth()
    try:
        assert check.problems() == []
        assert check.main() == 0
    finally:
        worker.register_death()
        connection.close()
