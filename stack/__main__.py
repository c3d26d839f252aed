"""The run command: the whole stack as local processes, ``python -m stack``.

Uses the Postgres and Redis named by ANONCHAT_POSTGRES_URL / ANONCHAT_REDIS_URL, else
the servers on the default local ports; creates and migrates the databases; starts every
service under honcho (one prefixed log stream, Ctrl-C or SIGTERM stops them all).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading

from honcho.manager import Manager
from honcho.printer import Printer

from common import databases
from stack import infra
from stack.processes import ROOT, StackConfig, free_port, stack_processes, wait_healthy


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
    args = parser.parse_args(argv)

    postgres_url = os.environ.get("ANONCHAT_POSTGRES_URL", infra.LOCAL_POSTGRES)
    redis_url = os.environ.get("ANONCHAT_REDIS_URL", infra.LOCAL_REDIS)
    for name, ok, url in (
        ("Postgres", infra.postgres_answers(postgres_url), postgres_url),
        ("Redis", infra.redis_answers(redis_url), redis_url),
    ):
        if not ok:
            print(f"stack: no {name} answers at {url}", file=sys.stderr)  # noqa: T201
            return 1

    urls = {}
    for service, name in (
        ("user_service", "anonchat_users"),
        ("message_service", "anonchat_messages"),
    ):
        urls[service] = infra.with_database(postgres_url, name)
        databases.create_database(urls[service], exist_ok=True)
        databases.upgrade(ROOT / service, urls[service])

    config = StackConfig(
        users_database_url=urls["user_service"],
        messages_database_url=urls["message_service"],
        redis_url=redis_url,
        gateway_port=args.port,
        user_service_port=free_port(),
        message_service_port=free_port(),
        workers=args.workers,
    )
    manager = Manager(Printer(sys.stdout))
    for process in stack_processes(config):
        command = "exec " + shlex.join(process.argv)
        manager.add_process(process.name, command, env={**os.environ, **process.env}, cwd=str(ROOT))
    gateway = f"http://127.0.0.1:{args.port}"
    threading.Thread(target=_announce, args=(gateway,), daemon=True).start()
    manager.loop()
    return int(manager.returncode or 0)


def _announce(gateway: str) -> None:
    try:
        wait_healthy(f"{gateway}/readyz", timeout=60)
    except TimeoutError:
        print(f"anonchat: {gateway}/readyz is still not ready", flush=True)  # noqa: T201
        return
    print(f"anonchat: ready, the gateway answers on {gateway}", flush=True)  # noqa: T201


if __name__ == "__main__":
    sys.exit(main())
