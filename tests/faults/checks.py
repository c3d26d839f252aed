"""What must hold after any fault, and the figures each fault test prints."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime

import httpx

from tests.api import User, eventually
from tests.events import Follower
from tests.faults.client import RETRIED, Ledger
from tests.faults.stack import FaultStack, Stored

Report = Callable[[str], None]


def inversions(stored: dict[int, Stored]) -> int:
    """How many messages are stored right after one of their conversation that was
    accepted after them: 0 when every conversation is stored in acceptance order."""
    conversations: dict[tuple[int, int], list[Stored]] = defaultdict(list)
    for message in stored.values():
        pair = (
            min(message.sender_id, message.receiver_id),
            max(message.sender_id, message.receiver_id),
        )
        conversations[pair].append(message)
    count = 0
    for messages in conversations.values():
        messages.sort(key=lambda m: m.seq)
        pairs = zip(messages, messages[1:], strict=False)
        count += sum(1 for earlier, later in pairs if later.created_at < earlier.created_at)
    return count


def settle(stack: FaultStack, ledger: Ledger, timeout: float = 60) -> dict[int, Stored]:
    """Wait until every acknowledged message is stored; what is stored then."""
    wanted = ledger.acknowledged().keys()

    def all_stored() -> dict[int, Stored] | None:
        stored = stack.stored()
        return stored if stored.keys() >= wanted else None

    try:
        return eventually(all_stored, timeout=timeout, interval=0.2)
    except AssertionError:
        missing = wanted - stack.stored().keys()
        exits = {name: popen.poll() for name, popen in stack.running.items()}
        raise AssertionError(
            f"{len(missing)} acknowledged messages not stored after {timeout} s "
            f"(process exit codes {exits})"
        ) from None


def check(report: Report, name: str, ledger: Ledger, stored: dict[int, Stored]) -> None:
    """Print the figures of a fault, then hold them to the promises."""
    acknowledged = ledger.acknowledged()
    lost = [i for i in acknowledged if i not in stored]
    altered = [
        i
        for i, send in acknowledged.items()
        if i in stored
        and (stored[i].content, stored[i].sender_id, stored[i].receiver_id)
        != (send.content, send.sender, send.receiver)
    ]
    contents = Counter(message.content for message in stored.values())
    duplicated = sum(count - 1 for count in contents.values())
    statuses = ledger.statuses()
    unanswered = [send.key for send in ledger.sends if not send.ids]
    several_ids = [send.key for send in ledger.sends if len(set(send.ids)) > 1]
    unexpected = {s: n for s, n in statuses.items() if s not in RETRIED | {202}}
    stray = [i for i in stored if i not in acknowledged]
    reordered = inversions(stored)
    retried = sum(1 for send in ledger.sends if len(send.statuses) > 1)
    report(
        f"{name}: acknowledged={len(acknowledged)} stored={len(stored)} lost={len(lost)} "
        f"duplicated={duplicated} 500s={statuses[500]} inversions={reordered} "
        f"unanswered={len(unanswered)} retried={retried} answers={dict(sorted(statuses.items()))}"
    )
    assert acknowledged
    assert lost == []
    assert altered == []
    assert duplicated == 0
    assert statuses[500] == 0
    assert unexpected == {}, f"answers no client should get: {unexpected}"
    assert unanswered == [], f"{len(unanswered)} keys were never answered 202"
    assert several_ids == [], "a key was answered with two ids"
    assert stray == [], "stored messages no 202 ever named"
    assert reordered == 0


def report_recovery(
    report: Report,
    name: str,
    stored: dict[int, Stored],
    answering_since: datetime,
) -> None:
    """The time from Postgres answering again to the last message it missed being stored.
    Within 5 s the backlog must be draining at full speed: the last one is stored at most
    5 s plus the time the drain itself takes after Postgres answers."""
    backlog = [m for m in stored.values() if m.created_at < answering_since < m.persisted_at]
    assert backlog, "nothing was accepted while Postgres was down"
    first = min(m.persisted_at for m in backlog)
    last = max(m.persisted_at for m in backlog)
    drain = (last - first).total_seconds()
    until_first = (first - answering_since).total_seconds()
    until_last = (last - answering_since).total_seconds()
    report(
        f"{name}: {len(backlog)} messages waited for Postgres; stored {until_first:.2f} s to "
        f"{until_last:.2f} s after it answered again ({len(backlog) / max(drain, 0.001):.0f}/s)"
    )
    assert until_last < 5 + drain


class Pager(threading.Thread):
    """A reader paging through its messages with the cursor while everything runs."""

    def __init__(self, stack: FaultStack, reader: User) -> None:
        super().__init__(daemon=True)
        self.url = stack.gateway_url
        self.reader = reader
        self.seen: list[int] = []
        self.cursor = "0"
        self.finish = threading.Event()

    def page(self, client: httpx.Client) -> bool:
        """Read from the cursor on; True when the reader is at the end."""
        response = client.get(
            f"/get_messages?limit=100&cursor={self.cursor}", headers=self.reader.headers
        )
        if response.status_code != 200:
            return True
        self.seen += [message["id"] for message in response.json()]
        self.cursor = response.headers["x-next-cursor"]
        return "next" not in response.links

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15) as client:
            while not self.finish.is_set():
                try:
                    at_end = self.page(client)
                except httpx.TransportError:
                    at_end = True
                if at_end:
                    time.sleep(0.02)

    def check(self, report: Report, name: str, stored: dict[int, Stored]) -> None:
        """Catch up, then: every message of the reader's seen once."""
        self.finish.set()
        self.join(30)
        with httpx.Client(base_url=self.url, timeout=15) as client:
            while not self.page(client):
                pass
        mine = {i for i, m in stored.items() if self.reader.id in (m.sender_id, m.receiver_id)}
        report(f"{name}: the paging reader saw {len(self.seen)} of its {len(mine)} messages")
        assert len(self.seen) == len(set(self.seen)), "a message was seen twice"
        assert set(self.seen) == mine


def check_stream(report: Report, name: str, follower: Follower, stored: dict[int, Stored]) -> None:
    """The stream a client followed through the fault, reconnecting with its last event id:
    every stored message of its user, once, in cursor order."""
    user = follower.user_id
    mine = sorted(
        (m for m in stored.values() if user in (m.sender_id, m.receiver_id)), key=lambda m: m.seq
    )

    def caught_up() -> bool:
        return len(follower.messages()) >= len(mine)

    with contextlib.suppress(AssertionError):
        eventually(caught_up, timeout=30)
    follower.stop()
    seen = [message["id"] for message in follower.messages()]
    report(
        f"{name}: the stream got {len(seen)} of its {len(mine)} messages over "
        f"{follower.connections} connections"
    )
    assert seen == [m.id for m in mine], "the stream lost, repeated or reordered a message"
