"""The stack in containers, driven as an operator drives it: build the image, bring the
stack up on a free port, use it through the published gateway, scale the workers, kill one
and restart Redis under a trickle of sends, take the stack down and up again, and at last
``down -v``.

One project for the whole module, under a name and image tag of its own, with secrets
made for this run and passed through the environment. The tests run in the order of this
file; each brings the stack to the shape it needs first. It is taken down (``down -v``)
even when a test fails. Skipped, saying why, where no Docker engine answers, where a
base image is missing (nothing here pulls one) or where no compose can build the image.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from types import TracebackType

import httpx
import pytest

from stack.processes import free_port
from tests.api import User, all_pages, eventually, login, new_user, register, unique_name
from tests.compose_project import Project, compose_or_reason, docker, succeeds

# A send that meets a Redis restart may be answered by any of these, or not at all; it is
# sent again with the same Idempotency-Key until the 202 comes.
RETRIED = {502, 503, 504}
# A job cut short by a killed worker is requeued after its timeout (30 s), the heartbeat
# grace (5 s) and the next maintenance pass (5 s).
REQUEUE_WITHIN = 120.0
# Counts each live worker's successful jobs from its RQ registration, inside a container
# (Redis is not published). The container's hostname is its short id.
COUNT_JOBS = """
import json, os
from redis import Redis
from rq import Worker
counts = {}
for worker in Worker.all(connection=Redis.from_url(os.environ["WORKER_REDIS_URL"])):
    counts[worker.hostname] = counts.get(worker.hostname, 0) + worker.successful_job_count
print(json.dumps(counts))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The stack built and up, every service healthy; ``down -v`` afterwards."""
    scratch = tmp_path_factory.mktemp("compose")
    command = compose_or_reason(scratch / "bin")
    if isinstance(command, str):
        pytest.skip(command)
    run_id = uuid.uuid4().hex[:10]
    env_file = scratch / "empty.env"
    env_file.write_text("")
    project = Project(
        name=f"anonchat-test-{run_id}",
        command=command,
        settings={
            "POSTGRES_PASSWORD": secrets.token_hex(32),
            "ANONCHAT_INTERNAL_TOKEN": secrets.token_hex(32),
            "ANONCHAT_JWT_SECRET": secrets.token_hex(32),
            "ANONCHAT_GATEWAY_PORT": str(free_port()),
            "ANONCHAT_IMAGE": f"anonchat-test:{run_id}",
        },
        env_file=env_file,
    )
    try:
        # The first build installs the locked dependencies from PyPI; later ones reuse
        # the cached layers.
        project.compose("build", timeout=900)
        project.up()
        yield project
    finally:
        project.compose("down", "-v", "--remove-orphans", timeout=120)
        succeeds(["docker", "image", "rm", project.settings["ANONCHAT_IMAGE"]])


@pytest.fixture(scope="module")
def gateway(project: Project) -> Iterator[httpx.Client]:
    """A client of the gateway on the host port the project publishes it on."""
    port = project.settings["ANONCHAT_GATEWAY_PORT"]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def pair(gateway: httpx.Client) -> tuple[User, User]:
    """Two registered users, logged in."""
    return new_user(gateway, "alice"), new_user(gateway, "bob")


def send(gateway: httpx.Client, sender: User, receiver: User, content: str) -> int:
    """Send a message; its id, once it is accepted (202)."""
    response = gateway.post(
        "/send_message",
        json={"content": content, "receiver_id": receiver.id},
        headers=sender.headers,
    )
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def stored(gateway: httpx.Client, reader: User, other: User) -> dict[int, str]:
    """Every stored message between two users, by id."""
    url = f"/get_messages?with_user={other.id}&limit=1000"
    return {int(m["id"]): str(m["content"]) for m in all_pages(gateway, url, reader.headers)}  # type: ignore[call-overload]


def wait_stored(gateway: httpx.Client, reader: User, other: User, ids: set[int]) -> dict[int, str]:
    """Wait until all of ``ids`` are stored (workers store them after the 202)."""

    def all_there() -> dict[int, str] | None:
        found = stored(gateway, reader, other)
        return found if found.keys() >= ids else None

    try:
        return eventually(all_there, timeout=REQUEUE_WITHIN, interval=0.2)
    except AssertionError:
        missing = sorted(ids - stored(gateway, reader, other).keys())
        raise AssertionError(
            f"{len(missing)} of {len(ids)} acknowledged messages not stored after "
            f"{REQUEUE_WITHIN} s, e.g. {missing[:10]}"
        ) from None


def jobs_done(project: Project) -> dict[str, int]:
    """Successful jobs of each running worker container, by container id."""
    workers = [c for c in project.containers("worker") if c.status == "running"]
    counts: dict[str, int] = json.loads(docker("exec", workers[0].id, "python", "-c", COUNT_JOBS))
    return {c.id: counts.get(c.hostname, 0) for c in workers}


class Trickle(threading.Thread):
    """Sends a message every ``interval`` seconds, the two users taking turns, until it
    is stopped. A send answered 500, 502, 503, 504 or not at all, or told to retry
    (Retry-After), is sent again with the same Idempotency-Key until its 202, which is
    the first answer given for that key: there is never a second message.
    """

    def __init__(self, base_url: str, users: tuple[User, User], interval: float = 0.05):
        super().__init__(name="trickle", daemon=True)
        self.base_url = base_url
        self.users = users
        self.interval = interval
        self.acknowledged: dict[int, str] = {}
        self.refused: list[str] = []
        self.internal_errors: list[str] = []
        self.retried = 0
        self._stopping = threading.Event()

    def __enter__(self) -> Trickle:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self.join(timeout=90)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            number = 0
            while not self._stopping.is_set():
                sender, receiver = self.users[number % 2], self.users[(number + 1) % 2]
                self.send(client, sender, receiver, f"trickle {number}")
                number += 1
                self._stopping.wait(self.interval)

    def send(self, client: httpx.Client, sender: User, receiver: User, content: str) -> None:
        """Send one message until it is accepted or refused for good (bounded: a record
        of a send cut short may ask for retries for a minute)."""
        headers = {**sender.headers, "Idempotency-Key": uuid.uuid4().hex}
        body = {"content": content, "receiver_id": receiver.id}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            pause = self.interval
            try:
                response = client.post("/send_message", json=body, headers=headers)
            except httpx.TransportError:
                pass
            else:
                if response.status_code == 202:
                    self.acknowledged[int(response.json()["id"])] = content
                    return
                if response.status_code == 500:
                    self.internal_errors.append(f"{content}: {response.text}")
                elif "retry-after" in response.headers:
                    pause = float(response.headers["retry-after"])
                elif response.status_code not in RETRIED:
                    self.refused.append(f"{content}: {response.status_code} {response.text}")
                    return
            self.retried += 1
            time.sleep(pause)
        self.refused.append(f"{content}: no 202 within 90 s")

    def wait_for(self, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` sends in all have been acknowledged."""
        eventually(lambda: len(self.acknowledged) >= count, timeout=timeout)


def test_users_register_log_in_and_read_back_through_the_published_port(
    project: Project, gateway: httpx.Client
) -> None:
    port = project.settings["ANONCHAT_GATEWAY_PORT"]
    assert project.compose("port", "gateway", "8000").strip().endswith(f":{port}")
    users = []
    for name in (unique_name("alice"), unique_name("bob")):
        registered = register(gateway, name)
        assert registered.status_code == 201, registered.text
        users.append(User(registered.json()["id"], name, login(gateway, name)))
    alice, bob = users
    ids = {send(gateway, alice, bob, "Привет, Bob!"), send(gateway, bob, alice, "Hi Alice")}
    for reader, other in ((alice, bob), (bob, alice)):
        messages = wait_stored(gateway, reader, other, ids)
        assert sorted(messages.values()) == ["Hi Alice", "Привет, Bob!"]


def test_three_workers_all_take_jobs(
    project: Project, gateway: httpx.Client, pair: tuple[User, User]
) -> None:
    project.up(workers=3)
    assert len(project.containers("worker")) == 3
    alice, bob = pair
    sent: set[int] = set()

    def every_worker_has_worked() -> dict[str, int] | None:
        for number in range(10):
            sender, receiver = (alice, bob) if number % 2 else (bob, alice)
            sent.add(send(gateway, sender, receiver, f"to any worker {len(sent)}"))
            time.sleep(0.05)
        counts = jobs_done(project)
        return counts if len(counts) == 3 and all(counts.values()) else None

    eventually(every_worker_has_worked, timeout=60, interval=0)
    wait_stored(gateway, alice, bob, sent)


def test_a_killed_worker_and_a_restarted_redis_lose_no_acknowledged_message(
    project: Project, gateway: httpx.Client, pair: tuple[User, User]
) -> None:
    project.up(workers=3)
    alice, bob = pair
    with Trickle(str(gateway.base_url), pair) as trickle:
        trickle.wait_for(10)
        docker("kill", project.containers("worker")[0].id)
        trickle.wait_for(len(trickle.acknowledged) + 10)
        docker("restart", project.containers("redis")[0].id)
        # Sends go on once Redis is back.
        trickle.wait_for(len(trickle.acknowledged) + 20, timeout=120)
    assert trickle.refused == []
    found = wait_stored(gateway, alice, bob, set(trickle.acknowledged))
    assert {i: found[i] for i in trickle.acknowledged} == trickle.acknowledged
    contents = [content for content in found.values() if content.startswith("trickle ")]
    assert len(contents) == len(set(contents)), "a retried send was stored twice"
    # `up` starts the killed worker again, as an operator's would.
    project.up(workers=3)
    assert trickle.internal_errors == [], "a send answered 500 while Redis restarted"


def test_the_data_outlives_down_and_up(
    project: Project, gateway: httpx.Client, pair: tuple[User, User]
) -> None:
    alice, bob = pair
    before = wait_stored(gateway, alice, bob, {send(gateway, alice, bob, "before down")})
    project.compose("down")
    left = project.leftovers()
    assert left["containers"] == []
    kept = {volume.removeprefix(f"{project.name}_") for volume in left["volumes"]}
    assert {"postgres-data", "redis-data"} <= kept, "down without -v keeps the data volumes"
    project.up()
    login(gateway, alice.name)
    assert stored(gateway, alice, bob).items() >= before.items()


def test_down_v_leaves_no_container_volume_or_network(project: Project) -> None:
    project.compose("down", "-v")
    assert project.leftovers() == {"containers": [], "volumes": [], "networks": []}
