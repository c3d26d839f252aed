"""The run command's process supervisor: every process of the stack under one parent,
their output in one stream prefixed with each one's name, a process that dies reported
and started again (as compose's ``restart: unless-stopped``), and none outliving it.

Written here rather than taken from honcho, which stops every process when one exits,
or supervisord, which runs as a daemon from a configuration file: this is one loop over
the processes' pipes, in one thread (so that each child can be set up before it runs).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TextIO

from common.lifetime import die_with_parent
from stack.processes import ROOT, Process

FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
# A process that ran this long before dying is restarted after the first delay again.
STABLE_AFTER = 30.0
STOP_TIMEOUT = 10.0
POLL_SECONDS = 0.2


@dataclass
class _Child:
    process: Process
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    delay: float = FIRST_RESTART_DELAY
    partial: bytes = b""


def _describe(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


class Supervisor:
    """Runs ``processes`` until SIGINT or SIGTERM, then stops them all."""

    def __init__(self, processes: Sequence[Process], out: TextIO) -> None:
        self.children = [_Child(process) for process in processes]
        self.out = out
        self.width = max(len(process.name) for process in processes)
        self.selector = selectors.DefaultSelector()
        self._stopping = False

    def say(self, name: str, line: str) -> None:
        """One line of the stream, tagged with the time and who said it."""
        stamp = time.strftime("%H:%M:%S")
        self.out.write(f"{stamp} {name:<{self.width}} | {line}\n")
        self.out.flush()

    def run(self, *, every_second: Callable[[], None] = lambda: None) -> int:
        """Supervise until told to stop; ``every_second`` runs about once a second."""
        previous = {
            sig: signal.signal(sig, self._stop_requested) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for child in self.children:
                self._start(child)
            ticked = 0.0
            while not self._stopping:
                self._pump(POLL_SECONDS)
                self._reap_and_restart()
                if time.monotonic() - ticked >= 1:
                    ticked = time.monotonic()
                    every_second()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _stop_requested(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _start(self, child: _Child) -> None:
        process = child.process
        child.popen = subprocess.Popen(
            process.argv,
            env={**os.environ, **process.env},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # The kernel stops it if the run command dies, even by SIGKILL. (preexec_fn
            # is unsafe beside other threads; the supervisor has none.)
            preexec_fn=die_with_parent,
        )
        assert child.popen.stdout is not None
        os.set_blocking(child.popen.stdout.fileno(), False)
        self.selector.register(child.popen.stdout, selectors.EVENT_READ, child)
        child.started_at = time.monotonic()
        child.restart_at = None

    def _pump(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            child: _Child = key.data
            data = os.read(key.fd, 65536)
            if not data:
                self.selector.unregister(key.fileobj)
                self._flush(child, final=True)
                continue
            child.partial += data
            self._flush(child)

    def _flush(self, child: _Child, *, final: bool = False) -> None:
        *lines, child.partial = child.partial.split(b"\n")
        if final and child.partial:
            lines.append(child.partial)
            child.partial = b""
        for line in lines:
            self.say(child.process.name, line.decode(errors="replace").rstrip("\r"))

    def _reap_and_restart(self) -> None:
        now = time.monotonic()
        for child in self.children:
            popen = child.popen
            if popen is not None and popen.poll() is not None:
                self._detach(child)
                if now - child.started_at >= STABLE_AFTER:
                    child.delay = FIRST_RESTART_DELAY
                self.say(
                    "anonchat",
                    f"{child.process.name} {_describe(popen.returncode)}; "
                    f"starting it again in {child.delay:.0f} s",
                )
                child.popen = None
                child.restart_at = now + child.delay
                child.delay = min(child.delay * 2, MAX_RESTART_DELAY)
            elif child.popen is None and child.restart_at is not None and now >= child.restart_at:
                self._start(child)

    def _detach(self, child: _Child) -> None:
        """Take in what a dead process last wrote, and end what it left in its group."""
        assert child.popen is not None
        stdout = child.popen.stdout
        assert stdout is not None
        self._pump(0)
        if any(key.fileobj is stdout for key in self.selector.get_map().values()):
            self.selector.unregister(stdout)
        self._flush(child, final=True)
        stdout.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.popen.pid, signal.SIGKILL)

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.popen is not None and c.popen.poll() is None]
        for child in running:
            assert child.popen is not None
            os.killpg(child.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(
            c.popen is not None and c.popen.poll() is None for c in running
        ):
            self._pump(POLL_SECONDS)
        for child in running:
            assert child.popen is not None
            if child.popen.poll() is None:
                os.killpg(child.popen.pid, signal.SIGKILL)
                child.popen.wait()
        self._pump(0)
