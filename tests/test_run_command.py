"""The README's run command, as a person runs it: from nothing to a working stack, and
back to nothing on Ctrl-C or SIGTERM."""

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stack.processes import ROOT, free_port
from tests.api import eventually, new_user, send, wait_persisted


def descendants(pid: int, *, depth: int | None = None) -> set[int]:
    """Every live process below ``pid`` (``depth`` levels down at most)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    pending = [(pid, 0)]
    while pending:
        parent, level = pending.pop()
        if depth is not None and level >= depth:
            continue
        for child in children.get(parent, []):
            found.add(child)
            pending.append((child, level + 1))
    return found


def workers(pid: int) -> list[int]:
    """The worker processes the run command ``pid`` started."""
    return [p for p in descendants(pid, depth=1) if cmdline(p)[1:3] == ["-m", "worker"]]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> re.Match[str]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            seen.append(line)
            if match := re.search(pattern, line):
                return match
        if process.poll() is not None:
            break
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def run_command(port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANONCHAT_")}
    argv = [sys.executable, "-m", "stack", "--throwaway", "--port", str(port), "--workers", "1"]
    # No metrics: the ports counted on from 9100 may be taken on a shared machine.
    argv += ["--metrics-port", "0"]
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**env, "ANONCHAT_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def send_and_see_it_stored(port: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as gateway:
        assert gateway.get("/readyz").json()["status"] == "ready"
        alice, bob = new_user(gateway), new_user(gateway)
        sent = send(gateway, alice, bob.id, "hello").json()
        wait_persisted(gateway, bob, sent["id"], timeout=15)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_run_command_brings_the_stack_up_and_leaves_nothing_behind(stop_signal) -> None:
    port = free_port()
    process = run_command(port)
    try:
        data_dir = read_until(process, r"throwaway servers in (\S+)", 30)[1]
        read_until(process, rf"ready, the gateway answers on http://127.0.0.1:{port}", 60)
        started = descendants(process.pid)
        send_and_see_it_stored(port)
        process.send_signal(stop_signal)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert not [pid for pid in started if alive(pid)]
    postgres = subprocess.run(["pgrep", "-f", data_dir], capture_output=True, text=True)
    assert postgres.stdout == ""
    assert not Path(data_dir).exists()


def test_a_process_that_dies_is_reported_and_started_again_and_none_outlives_its_parent() -> None:
    port = free_port()
    process = run_command(port)
    data_dir = None
    started: set[int] = set()
    try:
        data_dir = read_until(process, r"throwaway servers in (\S+)", 30)[1]
        read_until(process, rf"ready, the gateway answers on http://127.0.0.1:{port}", 60)
        first = workers(process.pid)
        assert len(first) == 1
        # RQ's scheduler runs in a child of the worker.
        scheduler = eventually(lambda: descendants(first[0]), timeout=15)
        os.kill(first[0], signal.SIGKILL)
        read_until(process, r"worker\.1 was killed by SIGKILL; starting it again in 1 s", 10)
        eventually(lambda: not any(alive(pid) for pid in scheduler), timeout=5)
        again = eventually(lambda: workers(process.pid), timeout=10)
        assert again != first
        send_and_see_it_stored(port)
        started = descendants(process.pid)
        # Even killed outright, the run command leaves no service behind.
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        eventually(
            lambda: not [pid for pid in started if alive(pid) and cmdline(pid)[1:2] == ["-m"]]
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
        # Its throwaway servers are left behind by a SIGKILL: end them here (Redis, a
        # child of the run command, renames its process; Postgres runs as a daemon).
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if data_dir is not None:
            subprocess.run(["pkill", "-KILL", "-f", data_dir], check=False)
            shutil.rmtree(data_dir, ignore_errors=True)
