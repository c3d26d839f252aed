"""A whole stack on Postgres and Redis servers of its own, whose parts a test stops,
kills and starts again."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg
import pytest

from stack import databases, servers
from stack.infra import libpq
from stack.processes import Process, StackConfig, spawn, stack_processes, stop, wait_healthy
from tests.harness.stack import stack_config_for_tests


@dataclass(frozen=True)
class Stored:
    """A stored message, as the checks read it."""

    id: int
    content: str
    sender_id: int
    receiver_id: int
    created_at: datetime
    seq: int
    persisted_at: datetime


@dataclass
class FaultStack:
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
        return libpq(self.config.messages_database_url)

    def start(self, name: str) -> None:
        process = self.processes[name]
        self.running[name] = spawn(process)
        if process.health_url:
            wait_healthy(process.health_url, timeout=30, process=self.running[name])

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send ``sig`` to the process (SIGKILL: with its children, as a container kill);
        its exit code."""
        popen = self.running[name]
        if sig == signal.SIGKILL:
            os.killpg(popen.pid, sig)
        else:
            popen.send_signal(sig)
        return popen.wait(timeout=60)

    def restart(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        self.kill(name, sig)
        self.start(name)

    def stored(self) -> dict[int, Stored]:
        with psycopg.connect(self.messages_database) as connection:
            rows = connection.execute(
                "SELECT id, content, sender_id, receiver_id, created_at, seq, persisted_at "
                "FROM messages"
            ).fetchall()
        return {row[0]: Stored(*row) for row in rows}

    def database_now(self) -> datetime:
        with psycopg.connect(self.messages_database) as connection:
            row = connection.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]


@pytest.fixture
def fault_stack() -> Iterator[FaultStack]:
    root = servers.data_folder()
    with (
        servers.throwaway_postgres(root) as postgres,
        servers.throwaway_redis(root) as redis_server,
    ):
        urls = databases.create_and_migrate(postgres.url, "anonchat")
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
