"""Running the benchmark's processes and loads: processes started, paused and stopped
(with their peak memory noted), wrk send loads, and small helpers for the figures."""

from __future__ import annotations

import contextlib
import itertools
import os
import statistics
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from bench import wrk
from stack import databases
from stack.processes import Process, spawn, stop, wait_healthy

Progress = Callable[[str], None]
HTTP_SECONDS = 8
# Labels each load, so that every message of a benchmark has a content of its own.
_runs = itertools.count()


@contextlib.contextmanager
def running(
    processes: list[Process],
    *,
    peak_rss: dict[str, int] | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start ``processes``, wait until each answers, stop them all afterwards (noting
    each one's peak resident memory first)."""
    started: list[tuple[Process, subprocess.Popen[bytes]]] = []
    try:
        for process in processes:
            running = spawn(process)
            started.append((process, running))
            if process.health_url:
                wait_healthy(process.health_url, timeout=60, process=running)
        yield [running for _, running in started]
    finally:
        for process, running in reversed(started):
            if peak_rss is not None:
                peak = peak_rss_kib(running.pid)
                peak_rss[process.name] = max(peak_rss.get(process.name, 0), peak)
            stop(running)


@contextlib.contextmanager
def stack_databases(postgres_url: str, prefix: str) -> Iterator[dict[str, str]]:
    """The stack's databases, named after ``prefix``, created and migrated for the block
    and dropped after it: each service's database URL by service."""
    urls = databases.create_and_migrate(postgres_url, prefix)
    try:
        yield urls
    finally:
        for database in urls.values():
            databases.drop_database(database)


def peak_rss_kib(pid: int) -> int:
    """The peak resident set of ``pid`` (VmHWM), in KiB; 0 if it is gone."""
    return _status_kib(pid, "VmHWM")


def rss_kib(pid: int) -> int:
    """The resident set of ``pid`` now (VmRSS), in KiB; 0 if it is gone."""
    return _status_kib(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    """The CPU time ``pid`` has used so far, user and system; 0 if it is gone."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _status_kib(pid: int, name: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    return 0


def send_load(
    url: str,
    users_file: Path,
    *,
    seconds: float = HTTP_SECONDS,
    keyed: bool = False,
    **options: Any,
) -> wrk.Load:
    """wrk sending messages to ``url`` as the users of ``users_file``, each with a
    content no other load of this benchmark uses (``keyed``: and an Idempotency-Key)."""
    args = ["send", str(users_file), str(next(_runs))]
    return wrk.run(url, [*args, "keyed"] if keyed else args, seconds=seconds, **options)


def url(port: int) -> str:
    """The URL of a server of ours on ``port``."""
    return f"http://127.0.0.1:{port}"


def percentile(values: list[float], percent: int) -> float:
    """The ``percent``-th percentile of ``values`` (NaN if there are none)."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def scalar(connection: psycopg.Connection[Any], query: str, params: Any = None) -> int:
    """The integer that ``query`` answers."""
    row = connection.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return int(row[0])
