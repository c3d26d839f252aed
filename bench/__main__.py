"""The benchmark: ``python -m bench`` (``make bench``).

Starts throwaway Postgres and Redis servers, measures the ceilings of this machine, the
seed-shaped baseline and anonchat in one run, prints one table and writes it as JSON.
Every process, database and data folder it creates is gone when it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import anonchat, ceilings, report
from bench.harness import Progress
from stack import servers


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and report it."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("bench/results/latest.json"),
        help="where to write the figures (default: bench/results/latest.json)",
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as cleanup:
        root = servers.data_folder()
        cleanup.callback(shutil.rmtree, root, ignore_errors=True)
        postgres = cleanup.enter_context(servers.throwaway_postgres(root))
        redis = cleanup.enter_context(servers.throwaway_redis(root))
        results = measure(postgres.url, redis.url, progress=_progress)
    results["machine"] = _machine()
    print(report.table(results))  # noqa: T201
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {args.json}")  # noqa: T201
    return 0


def measure(postgres_url: str, redis_url: str, *, progress: Progress) -> dict[str, Any]:
    """Every figure of the benchmark, as a JSON-ready dict, in the order measured."""
    with tempfile.TemporaryDirectory(prefix="anonchat-bench-") as scratch:
        # The ceilings and the baseline check no token: any will do.
        fake_users = Path(scratch) / "fake-users"
        fake_users.write_text("".join(f"{n} token{n}\n" for n in range(1, anonchat.USERS + 1)))
        results: dict[str, Any] = {"servers": ceilings.server_versions(postgres_url, redis_url)}
        progress("ceilings: Postgres inserts, RQ enqueue")
        results["ceilings"] = ceilings.storage(postgres_url, redis_url)
        progress("ceilings: one hop, two hops")
        results["ceilings"] |= ceilings.http(fake_users)
        progress("baseline: Flask under gunicorn, one insert per send")
        results["baseline"] = ceilings.baseline(postgres_url, fake_users)
        results["anonchat"] = anonchat.measure(postgres_url, redis_url, Path(scratch), progress)
    return results


def _progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)  # noqa: T201


def _machine() -> dict[str, object]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


if __name__ == "__main__":
    sys.exit(main())
