"""The README's run command, as a person runs it: from nothing to a working stack, and
back to nothing on Ctrl-C or SIGTERM."""

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stack.processes import ROOT, free_port
from tests.api import eventually, new_user


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


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


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_run_command_brings_the_stack_up_and_leaves_nothing_behind(stop_signal) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANONCHAT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "stack", "--throwaway", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env={**env, "ANONCHAT_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        data_dir = read_until(process, r"throwaway servers in (\S+)", 30)[1]
        read_until(process, rf"ready, the gateway answers on http://127.0.0.1:{port}", 60)
        started = descendants(process.pid)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as gateway:
            assert gateway.get("/readyz").json()["status"] == "ready"
            alice, bob = new_user(gateway), new_user(gateway)
            sent = gateway.post(
                "/send_message",
                json={"content": "hello", "receiver_id": bob.id},
                headers=alice.headers,
            ).json()
            eventually(
                lambda: (
                    gateway.get(f"/messages/{sent['id']}", headers=bob.headers).json()["status"]
                    == "persisted"
                ),
                timeout=15,
            )
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
