"""Throwaway Postgres and Redis servers from the installed binaries, in a data folder:
for the run command when no server answers, and for tests that stop and start them."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from stack.processes import free_port

# The append-only-file settings of docker-compose.yml's Redis.
REDIS_PERSISTENCE = ["--appendonly", "yes", "--appendfsync", "always"]


def _postgres_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    try:
        bindir = subprocess.run(
            ["pg_config", "--bindir"], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"{name} not found: install PostgreSQL's server package") from exc
    return str(Path(bindir) / name)


def _as_postgres_user(argv: list[str]) -> list[str]:
    """Postgres refuses to run as root: run it as the ``postgres`` account then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class PostgresServer:
    """A Postgres cluster of our own in ``data_dir``, on ``port``."""

    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        """The URL of its maintenance database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        """Create the cluster (trust authentication, loopback only)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
        subprocess.run(
            _as_postgres_user(
                [
                    _postgres_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1"
        subprocess.run(
            _as_postgres_user(
                [
                    _postgres_bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-o",
                    options,
                    "-l",
                    str(self.data_dir / "server.log"),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash)."""
        subprocess.run(
            _as_postgres_user(
                [_postgres_bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"]
            ),
            check=False,
            capture_output=True,
        )


@dataclass
class RedisServer:
    """A Redis server of our own with AOF persistence in ``data_dir``, on ``port``."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            *REDIS_PERSISTENCE,
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        self.process = subprocess.Popen(argv, start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)
        client.close()

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM (it fsyncs and exits), or SIGKILL as a crash would."""
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(30)


def data_folder() -> Path:
    """A new folder for throwaway servers' data (reachable by the postgres account)."""
    root = Path(tempfile.mkdtemp(prefix="anonchat-data-"))
    root.chmod(0o755)
    return root


@contextlib.contextmanager
def throwaway_postgres(root: Path) -> Iterator[PostgresServer]:
    """A Postgres cluster of our own under ``root``, stopped afterwards."""
    server = PostgresServer(root / "postgres", free_port())
    server.init()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def throwaway_redis(root: Path) -> Iterator[RedisServer]:
    """A Redis of our own under ``root``, stopped afterwards."""
    server = RedisServer(root / "redis", free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
