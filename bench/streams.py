"""The event stream's figures, and the send path's with blocks, on an anonchat stack of
its own (2 workers), so that its thousands of streams leave the main stack's memory
figures alone.

The streams are held by a process of their own (``bench.stream_client``); the probe's
receiver reads its stream in this process, beside the probe's sender, as the
send-to-visible probe reads Redis' announcements.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from redis import Redis

from bench.anonchat import PASSWORD, USERS, Stack, stack_config
from bench.harness import (
    HTTP_SECONDS,
    Progress,
    cpu_seconds,
    rss_kib,
    running,
    scalar,
    send_load,
    stack_databases,
    url,
)
from bench.results import Blocks, FanOut, Held, Rounds, Streams
from bench.wrk import Load
from stack import infra
from stack.processes import ROOT, stack_processes

# Streams open during send-to-delivered and the fan-out load.
STREAMS = 1_000
# Idle streams are opened in steps up to the most tried (fewer if the open-files limit
# cannot be raised that far), by users who hold up to ``PER_USER`` each: the per-user
# limit is lifted as the send limit is, so that registering them takes seconds, not a
# minute (the limit is still checked at every open).
HELD_STEP = 2_000
HELD_MOST = 10_000
PER_USER = 100
IDLE_USERS = HELD_MOST // PER_USER
# Each stream is a descriptor in the stream client and in message_service, and two in the
# gateway (its client's and its own to message_service); besides them, a process keeps
# fewer than this many.
SPARE_FILES = 1024
# Descriptors a server may open or close meanwhile on its own (pooled connections).
STRAY_FILES = 16
OPEN_FILES = 2 * HELD_MOST + SPARE_FILES
MEASURED = ("gateway", "message_service")
# Rounds of sends to blockers beside ordinary ones, the two groups of users swapping.
BLOCK_ROUNDS = 2
# Resident memory counts as settled once two readings a second apart agree within this.
SETTLED_KIB = 256
SETTLE_SECONDS = 15
# A server counts as idle below this share of a core.
QUIET_SHARE = 0.05


def measure(postgres_url: str, redis_url: str, scratch: Path, progress: Progress) -> Streams:
    """Every figure of the event stream, and of sends to receivers who block their senders."""
    open_files = raise_open_files(OPEN_FILES)
    scratch.mkdir(exist_ok=True)
    with stack_databases(postgres_url, "bench_streams") as urls:
        config = stack_config(
            urls, redis_url, scratch, {"MESSAGE_SERVICE_STREAMS_PER_USER": str(PER_USER)}
        )
        processes = stack_processes(config)
        gateway = url(config.gateway_port)
        with (
            running(processes) as started,
            psycopg.connect(infra.libpq(urls["message_service"]), autocommit=True) as db,
            Redis.from_url(redis_url) as redis,
            StreamClient(gateway) as streams,
        ):
            pids = {p.name: r.pid for p, r in zip(processes, started, strict=True)}
            progress(f"streams: registering {USERS} senders and {IDLE_USERS:,} idle users")
            users = [(int(uid), str(token)) for uid, token in streams.register("streams", USERS)]
            idle = [str(token) for _, token in streams.register("idle", IDLE_USERS)]
            users_file = scratch / "users"
            users_file.write_text("".join(f"{uid} {token}\n" for uid, token in users))
            stack = Stack(gateway, users_file, db, redis)
            progress(f"streams: idle streams held, opened {HELD_STEP:,} at a time")
            most = min(HELD_MOST, (open_files - SPARE_FILES) // 2 // HELD_STEP * HELD_STEP)
            held = _held(streams, idle, {name: pids[name] for name in MEASURED}, most=most)
            progress(f"streams: accepted sends with no stream open, then with {STREAMS:,}")
            stack.send(3)
            accepted = stack.send(HTTP_SECONDS)
            fan_out = _fan_out(stack, streams, users, idle)
            progress(f"streams: send-to-delivered at half the maximum rate, {STREAMS:,} open")
            # The probe's receiver streams here; the other streams are idle users'.
            streams.open("idle", _idle(idle, STREAMS - USERS, STREAMS - 1), cursor=None)
            with delivered(gateway, users[1][1], cursor=_latest(db)) as seen:
                probe = stack.probe(users, rate=accepted.rate / 2, seen=seen)
                delivered_streams = streams.open_count() + 1
            streams.close("idle")
            progress("streams: sends to receivers who block their senders, beside others")
            blocks = _blocks(stack, users, scratch)
    return Streams(
        accepted=accepted,
        fan_out=fan_out,
        delivered=probe,
        delivered_streams=delivered_streams,
        held=held,
        blocks=blocks,
        open_files=open_files,
    )


def raise_open_files(wanted: int) -> int:
    """Raise this process's open-files limit to ``wanted`` (the servers it starts inherit
    it); the limit it got, which is less if it may not raise the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, wanted)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class StreamClient:
    """The process holding streams (``bench.stream_client``), driven over its stdin."""

    def __init__(self, gateway: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.stream_client", gateway],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command; its answer."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the stream client exited with {self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def register(self, prefix: str, count: int) -> list[list[Any]]:
        """Users ``prefix0`` ..., registered and logged in: their ids and tokens."""
        command = {"do": "register", "prefix": prefix, "count": count, "password": PASSWORD}
        users: list[list[Any]] = self.ask(command)["users"]
        return users

    def open(self, group: str, tokens: list[str], *, cursor: int | None) -> dict[str, int]:
        """One more stream in ``group`` per token; the statuses of those refused."""
        answer = self.ask({"do": "open", "group": group, "tokens": tokens, "cursor": cursor})
        refused: dict[str, int] = answer["refused"]
        return refused

    def close(self, group: str) -> None:
        self.ask({"do": "close", "group": group})

    def open_count(self, group: str | None = None) -> int:
        """The streams of ``group`` (or of every group) still open."""
        counts: dict[str, int] = self.ask({"do": "status"})["open"]
        return counts.get(group, 0) if group is not None else sum(counts.values())

    def events(self) -> int:
        """The message events read so far on every stream."""
        return int(self.ask({"do": "status"})["events"])


def _held(streams: StreamClient, idle: list[str], pids: dict[str, int], *, most: int) -> list[Held]:
    """Idle streams opened ``HELD_STEP`` at a time up to ``most``, each step with the
    servers' memory once it settled; it stops at a step not held whole. Returns once
    the servers have let go of every stream."""
    files = {name: _open_files(pid) for name, pid in pids.items()}
    before = _settled_rss(pids)
    steps: list[Held] = []
    for opened in range(HELD_STEP, most + 1, HELD_STEP):
        refused = streams.open("held", _idle(idle, opened - HELD_STEP, opened), cursor=None)
        after = _settled_rss(pids)
        step = Held(
            opened=opened,
            held=streams.open_count("held"),
            refused=refused,
            rss_before_kib=before,
            rss_after_kib=after,
        )
        steps.append(step)
        if step.held < opened:
            break
    streams.close("held")
    deadline = time.perf_counter() + 30
    while any(_open_files(pid) > files[name] + STRAY_FILES for name, pid in pids.items()):
        if time.perf_counter() > deadline:
            raise RuntimeError("the servers still hold the streams closed 30 s ago")
        time.sleep(0.1)
    _wait_quiet(pids)
    return steps


def _wait_quiet(pids: dict[str, int]) -> None:
    """Wait until each process uses less than ``QUIET_SHARE`` of a core over half a
    second (``SETTLE_SECONDS`` at most): letting go of thousands of streams keeps the
    servers busy for seconds after their sockets have closed."""
    deadline = time.perf_counter() + SETTLE_SECONDS
    used = {name: cpu_seconds(pid) for name, pid in pids.items()}
    while time.perf_counter() < deadline:
        time.sleep(0.5)
        previous, used = used, {name: cpu_seconds(pid) for name, pid in pids.items()}
        if all(used[name] - previous[name] < QUIET_SHARE * 0.5 for name in pids):
            return


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _idle(tokens: list[str], start: int, stop: int) -> list[str]:
    """The tokens for idle streams ``start`` to ``stop``: the idle users take turns, so
    that none holds more than ``PER_USER`` of ``HELD_MOST``."""
    return [tokens[n % len(tokens)] for n in range(start, stop)]


def _settled_rss(pids: dict[str, int]) -> dict[str, int]:
    """Each process's resident memory once two readings a second apart agree within
    ``SETTLED_KIB`` (or ``SETTLE_SECONDS`` have passed)."""
    deadline = time.perf_counter() + SETTLE_SECONDS
    reading = {name: rss_kib(pid) for name, pid in pids.items()}
    while time.perf_counter() < deadline:
        time.sleep(1)
        previous, reading = reading, {name: rss_kib(pid) for name, pid in pids.items()}
        if all(abs(reading[name] - previous[name]) < SETTLED_KIB for name in pids):
            break
    return reading


def _fan_out(
    stack: Stack, streams: StreamClient, users: list[tuple[int, str]], idle: list[str]
) -> FanOut:
    """Sends at the maximum rate while every sender has a stream open (so that each
    message goes to two streams, its sender's and its receiver's), with idle users'
    streams making up ``STREAMS``; and the events those streams read."""
    streams.open("senders", [token for _, token in users], cursor=_latest(stack.db))
    streams.open("idle", _idle(idle, 0, STREAMS - USERS), cursor=None)
    open_streams = streams.open_count()
    before = streams.events()
    load = stack.send(HTTP_SECONDS)
    stack.wait_drained()
    # Every message accepted reaches two streams; wrk counts the answers it read.
    expected = before + 2 * load.answered_2xx
    deadline = time.perf_counter() + 10
    while (events := streams.events()) < expected and time.perf_counter() < deadline:
        time.sleep(0.1)
    streams.close("senders")
    return FanOut(streams=open_streams, load=load, events=events - before)


def _latest(db: psycopg.Connection[Any]) -> int:
    """The cursor of the last message stored."""
    return scalar(db, "SELECT coalesce(max(seq), 0) FROM messages")


@contextlib.contextmanager
def delivered(gateway: str, token: str, *, cursor: int) -> Iterator[dict[int, float]]:
    """When each message id arrived as an ``event: message`` on the stream of ``token``'s
    user (after ``cursor``), noted by a thread reading it for the block."""
    seen: dict[int, float] = {}
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=gateway, headers=headers, timeout=httpx.Timeout(5, read=None)) as c,
        c.stream("GET", "/events", params={"cursor": cursor}) as answer,
    ):
        answer.raise_for_status()
        connection: socket.socket = answer.extensions["network_stream"].get_extra_info("socket")

        def read() -> None:
            event = ""
            # Ends with the read that the connection's shutdown below breaks off.
            with contextlib.suppress(httpx.HTTPError):
                for line in answer.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif line.startswith("data: ") and event == "message":
                        seen[json.loads(line.removeprefix("data: "))["id"]] = time.perf_counter()

        reader = threading.Thread(target=read)
        reader.start()
        try:
            yield seen
        finally:
            connection.shutdown(socket.SHUT_RDWR)
            reader.join()


def _blocks(stack: Stack, users: list[tuple[int, str]], scratch: Path) -> Blocks:
    """Rounds of two loads at once, each from a quarter of the users to a quarter of
    their own, one sender to one receiver: one group's receivers block their senders,
    the other's block no one; the groups swap roles each round, so that neither's own
    luck (which wrk the scheduler favours) counts for one kind of send."""
    quarter = len(users) // 4
    groups = [
        list(zip(users[:quarter], users[quarter : 2 * quarter], strict=True)),
        list(zip(users[2 * quarter : 3 * quarter], users[3 * quarter :], strict=True)),
    ]
    files = []
    for n, pairs in enumerate(groups):
        files.append(scratch / f"pairs-{n}")
        files[-1].write_text("".join(f"{uid} {token} {to}\n" for (uid, token), (to, _) in pairs))
    hidden = scalar(stack.db, "SELECT count(*) FROM messages WHERE hidden")
    blocked: list[Load] = []
    ordinary: list[Load] = []
    with httpx.Client(base_url=stack.gateway, timeout=10) as client:
        for round_ in range(BLOCK_ROUNDS):
            blocking = round_ % 2
            for n, pairs in enumerate(groups):
                for (sender, _), (_, token) in pairs:
                    answer = client.request(
                        "PUT" if n == blocking else "DELETE",
                        f"/blocks/{sender}",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    answer.raise_for_status()
            loads = _at_once(stack.gateway, files)
            stack.accepted_total += sum(load.answered_2xx for load in loads)
            blocked.append(loads[blocking])
            ordinary.append(loads[1 - blocking])
    stack.wait_drained()
    return Blocks(
        blocked=Rounds(blocked),
        ordinary=Rounds(ordinary),
        hidden=scalar(stack.db, "SELECT count(*) FROM messages WHERE hidden") - hidden,
    )


def _at_once(gateway: str, files: list[Path]) -> list[Load]:
    """A wrk load of 32 connections as the senders of each file, all at once."""
    loads: dict[int, Load] = {}

    def load(n: int) -> None:
        loads[n] = send_load(gateway, files[n], seconds=HTTP_SECONDS, connections=32, threads=1)

    threads = [threading.Thread(target=load, args=(n,)) for n in range(len(files))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [loads[n] for n in range(len(files))]
