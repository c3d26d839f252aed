"""The run command: the whole stack as local processes, ``python -m stack``.

Uses the Postgres and Redis named by ANONCHAT_POSTGRES_URL / ANONCHAT_REDIS_URL, else
the servers on the default local ports, else throwaway ones started from the installed
``postgres`` and ``redis-server`` binaries; creates and migrates the databases; starts
every service under one supervisor (one prefixed log stream; a process that dies is
reported and started again; Ctrl-C or SIGTERM stops them all, and the throwaway servers
after them).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import urllib.error
import urllib.request

from stack import databases, infra, servers
from stack.processes import StackConfig, free_port, numbered_metrics_ports, stack_processes
from stack.supervisor import Supervisor


def main(argv: list[str] | None = None) -> int:
    """Start the stack and wait until it is stopped."""
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("ANONCHAT_GATEWAY_PORT", "8000")),
        help="the gateway's port (ANONCHAT_GATEWAY_PORT, default 8000)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("ANONCHAT_WORKERS", "2")),
        help="how many worker processes (ANONCHAT_WORKERS, default 2)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("ANONCHAT_METRICS_PORT", "9100")),
        help="the first process's metrics port, the next ones' counted on from it "
        "(ANONCHAT_METRICS_PORT, default 9100; 0: no metrics)",
    )
    parser.add_argument(
        "--throwaway",
        action="store_true",
        help="start Postgres and Redis of our own even if local ones answer",
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as cleanup:
        try:
            postgres_url, redis_url = _servers(cleanup, throwaway=args.throwaway)
        except RuntimeError as exc:
            print(f"stack: {exc}", file=sys.stderr)  # noqa: T201
            return 1
        return _run(args, postgres_url, redis_url)


def _servers(cleanup: contextlib.ExitStack, *, throwaway: bool) -> tuple[str, str]:
    """Postgres and Redis URLs: from the environment, else the local servers, else
    throwaway ones in a data folder removed on exit."""
    postgres_url = os.environ.get("ANONCHAT_POSTGRES_URL")
    redis_url = os.environ.get("ANONCHAT_REDIS_URL")
    for name, url, answers in (
        ("ANONCHAT_POSTGRES_URL", postgres_url, infra.postgres_answers),
        ("ANONCHAT_REDIS_URL", redis_url, infra.redis_answers),
    ):
        if url and not answers(url):
            raise RuntimeError(f"{name}={url} does not answer")
    if not throwaway:
        if not postgres_url and infra.postgres_answers(infra.LOCAL_POSTGRES):
            postgres_url = infra.LOCAL_POSTGRES
        if not redis_url and infra.redis_answers(infra.LOCAL_REDIS):
            redis_url = infra.LOCAL_REDIS
    if postgres_url and redis_url:
        return postgres_url, redis_url
    root = servers.data_folder()
    cleanup.callback(shutil.rmtree, root, ignore_errors=True)
    print(f"anonchat: starting throwaway servers in {root}", flush=True)  # noqa: T201
    if not postgres_url:
        postgres_url = cleanup.enter_context(servers.throwaway_postgres(root)).url
    if not redis_url:
        redis_url = cleanup.enter_context(servers.throwaway_redis(root)).url
    return postgres_url, redis_url


def _run(args: argparse.Namespace, postgres_url: str, redis_url: str) -> int:
    urls = databases.create_and_migrate(postgres_url, "anonchat", exist_ok=True)
    config = StackConfig(
        users_database_url=urls["user_service"],
        messages_database_url=urls["message_service"],
        redis_url=redis_url,
        gateway_port=args.port,
        user_service_port=free_port(),
        message_service_port=free_port(),
        workers=args.workers,
        metrics_ports=numbered_metrics_ports(args.metrics_port, args.workers),
    )
    supervisor = Supervisor(stack_processes(config), sys.stdout)
    gateway = f"http://127.0.0.1:{args.port}"
    announced = False

    def announce_once_ready() -> None:
        nonlocal announced
        if not announced and _ready(f"{gateway}/readyz"):
            announced = True
            supervisor.say("anonchat", f"ready, the gateway answers on {gateway}")
            for name, port in config.metrics_ports.items():
                supervisor.say(name, f"metrics on http://127.0.0.1:{port}/metrics")

    return supervisor.run(every_second=announce_once_ready)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(main())
