"""Driving a load with wrk, a separate process, and reading its figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("load.lua")


@dataclass(frozen=True)
class Load:
    """What one wrk run measured."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    # Answered requests per second (2xx only); a field so that the JSON holds it too.
    rate: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", self.answered_2xx / self.seconds)

    @property
    def answered_2xx(self) -> int:
        """The requests answered with a 2xx."""
        return self.requests - self.non_2xx


def wrk_binary() -> str:
    """The wrk executable; ``make bench`` installs it from Debian's packages if missing."""
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    return found


def run(
    url: str,
    script_args: list[str],
    *,
    seconds: float,
    connections: int = 64,
    threads: int = 2,
    delay_ms: float | None = None,
) -> Load:
    """Run wrk against ``url`` for ``seconds`` and return its figures."""
    env = dict(os.environ)
    if delay_ms is not None:
        env["BENCH_DELAY_MS"] = f"{delay_ms:.3f}"
    argv = [
        wrk_binary(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=5s",
        f"--script={SCRIPT}",
        url,
        "--",
        *script_args,
    ]
    output = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    return Load(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        non_2xx=figures["non_2xx"],
        socket_errors=figures["socket_errors"],
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
    )
