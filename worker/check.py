"""The worker's health, for container healthchecks: ``python -m worker.check [PATH]``.

A worker notes its state in a small JSON file each time it sends RQ's heartbeat,
``{"at": <epoch>, "state": "ok" | "<why not>", "fresh_for": <seconds>}``. The probe only
reads that file: it exits 0 while the state is "ok" and no older than the worker said it
would stay, else it prints why and exits 1. It imports nothing outside the standard
library and opens no connection, so it costs little more than Python's start-up (a probe
that asked Redis and Postgres cost 1.5 s of CPU in imports) and can run every few seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time

# The worker setting WORKER_STATUS_FILE defaults to this path too.
DEFAULT_STATUS_FILE = "/tmp/anonchat-worker-status.json"
OK = "ok"


class StatusFile:
    """Where a worker process notes its state for the probe.

    A busy worker sends several heartbeats a job, so an unchanged state is rewritten at
    most once every ``min_interval`` seconds. The file
    claims the longest freshness any heartbeat has asked for, plus that interval, so that
    a heartbeat left unwritten never makes a live worker look stale.
    """

    def __init__(self, path: str, *, min_interval: float = 1.0) -> None:
        self.path = path
        self.min_interval = min_interval
        self._longest = 0.0
        self._last: tuple[str, float, float] | None = None  # state, at, longest
        self._failing = False

    def record(self, state: str, *, fresh_for: float) -> None:
        """Note ``state`` (``OK`` or why not), true for ``fresh_for`` seconds at least.

        A file that cannot be written is logged, not raised: the worker goes on working
        and the probe, seeing no fresh status, reports it.
        """
        now = time.time()
        self._longest = max(self._longest, fresh_for)
        if self._last is not None:
            state_was, at, longest_was = self._last
            unchanged = (state_was, longest_was) == (state, self._longest)
            if unchanged and now - at < self.min_interval:
                return
        status = {"at": now, "state": state, "fresh_for": self._longest + self.min_interval}
        partial = f"{self.path}.{os.getpid()}"
        try:
            with open(partial, "w", encoding="utf-8") as file:
                json.dump(status, file)
            os.replace(partial, self.path)  # the probe never reads half a file
        except OSError:
            if not self._failing:
                import logging  # here, not at the top: the probe would load it for nothing

                logging.getLogger(__name__).warning(
                    "cannot write the status file %s", self.path, exc_info=True
                )
            self._failing = True
            return
        self._failing = False
        self._last = (state, now, self._longest)


def problem(path: str) -> str | None:
    """Why the worker that writes ``path`` is not healthy, or None when it is."""
    try:
        with open(path, encoding="utf-8") as file:
            status = json.load(file)
        at, state = float(status["at"]), str(status["state"])
        fresh_for = float(status["fresh_for"])
    except FileNotFoundError:
        return f"no status in {path}: the worker has not sent a heartbeat yet"
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"unreadable status in {path}: {error!r}"
    if state != OK:
        return state
    age = time.time() - at
    if age > fresh_for:
        return f"no heartbeat for {age:.0f} s (the last one held for {fresh_for:.0f} s)"
    return None


def main(argv: list[str]) -> int:
    """Print the problem, if any; 0 when there is none."""
    found = problem(argv[1] if len(argv) > 1 else DEFAULT_STATUS_FILE)
    if found is not None:
        print(found, file=sys.stderr)  # noqa: T201
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
