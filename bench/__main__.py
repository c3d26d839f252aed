"""The benchmark: ``python -m bench`` (``make bench``).

Starts throwaway Postgres and Redis servers, measures the ceilings of this machine, the
seed-shaped baseline and anonchat in one run, prints one table and writes it as JSON.
Every process, database and data folder it creates is gone when it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench import anonchat, ceilings, report, streams
from bench.harness import Progress
from bench.results import Results
from stack import servers

SECTIONS = ("ceilings", "baseline", "anonchat", "streams")


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and report them."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("bench/results/latest.json"),
        help="where to write the figures (default: bench/results/latest.json)",
    )
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="measure only this section (repeatable; anonchat's ratios need the ceilings "
        "and the baseline, so it brings them along)",
    )
    args = parser.parse_args(argv)
    sections = set(args.only or SECTIONS)
    if "anonchat" in sections:
        sections |= {"ceilings", "baseline"}
    with contextlib.ExitStack() as cleanup:
        root = servers.data_folder()
        cleanup.callback(shutil.rmtree, root, ignore_errors=True)
        postgres = cleanup.enter_context(servers.throwaway_postgres(root))
        redis = cleanup.enter_context(servers.throwaway_redis(root))
        results = measure(postgres.url, redis.url, sections, progress=_progress)
    print(report.table(results))  # noqa: T201
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dataclasses.asdict(results), indent=2) + "\n")
    print(f"figures written to {args.json}")  # noqa: T201
    return 0


def measure(
    postgres_url: str, redis_url: str, sections: set[str], *, progress: Progress
) -> Results:
    """Every figure of the benchmark's ``sections``, in the order measured."""
    with tempfile.TemporaryDirectory(prefix="anonchat-bench-") as scratch:
        # The ceilings and the baseline check no token: any will do.
        fake_users = Path(scratch) / "fake-users"
        fake_users.write_text("".join(f"{n} token{n}\n" for n in range(1, anonchat.USERS + 1)))
        return Results(
            machine=ceilings.machine(postgres_url, redis_url),
            ceilings=(
                ceilings.measure(postgres_url, redis_url, fake_users, progress)
                if "ceilings" in sections
                else None
            ),
            baseline=(
                ceilings.baseline(postgres_url, fake_users, progress)
                if "baseline" in sections
                else None
            ),
            anonchat=(
                anonchat.measure(postgres_url, redis_url, Path(scratch), progress)
                if "anonchat" in sections
                else None
            ),
            streams=(
                streams.measure(postgres_url, redis_url, Path(scratch) / "streams", progress)
                if "streams" in sections
                else None
            ),
        )


def _progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)  # noqa: T201


if __name__ == "__main__":
    sys.exit(main())
