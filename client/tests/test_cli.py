"""The ``anonchat`` command line as people use it, against the real stack: each person
is a terminal of their own (``HOME`` and ``XDG_CONFIG_HOME`` in a folder of theirs),
running the installed command with pipes for standard input and output."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from anonchat_client.cli import cli
from stack.processes import free_port
from tests.api import PASSWORD, unique_name

ANONCHAT = str(Path(sys.executable).with_name("anonchat"))
# A command answers within this; a line typed in a chat shows on both sides within it.
TIMEOUT = 30.0


class Live:
    """A command left running (``chat``, ``inbox --follow``): lines go to its standard
    input, and its output is read as it comes."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.errors: list[str] = []
        assert popen.stdout is not None
        assert popen.stderr is not None
        self.pumps = [
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            for stream, sink in ((popen.stdout, self.lines.put), (popen.stderr, self.errors.append))
        ]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(stream: IO[str], sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line.rstrip("\n"))

    def type(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def expect(self, text: str, timeout: float = TIMEOUT) -> str:
        """The first line (from the start) that contains ``text``, once it is printed."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in self.seen if text in line), None)
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.popen.poll() is not None and self.lines.empty():
                raise AssertionError(
                    f"{text!r} not shown; output: {self.seen}, errors: {self.errors}"
                )
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.lines.get(timeout=min(remaining, 0.5)))

    def leave(self) -> int:
        """Close its standard input (Ctrl-D), and its exit code."""
        assert self.popen.stdin is not None
        self.popen.stdin.close()
        return self.popen.wait(TIMEOUT)

    def stop(self) -> None:
        """End it if it still runs, and close its pipes."""
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(TIMEOUT)
        for pump in self.pumps:
            pump.join(TIMEOUT)
        for pipe in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()


class Person:
    """Someone at a terminal of their own."""

    def __init__(self, home: Path, server: str) -> None:
        self.home = home
        self.name = unique_name("p")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANONCHAT_")}
        self.env |= {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "ANONCHAT_SERVER": server,
        }
        self.started: list[Live] = []

    @property
    def credentials(self) -> Path:
        return self.home / ".config" / "anonchat" / "credentials.json"

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ANONCHAT, *args],
            input=input or "",
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    def ok(self, *args: str, input: str | None = None) -> str:
        done = self.run(*args, input=input)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def register(self) -> Person:
        self.ok("register", self.name, "--password-stdin", input=PASSWORD + "\n")
        return self

    def start(self, *args: str) -> Live:
        popen = subprocess.Popen(
            [ANONCHAT, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            text=True,
            bufsize=1,
        )
        self.started.append(Live(popen))
        return self.started[-1]


@pytest.fixture
def person(tmp_path: Path, server: str) -> Iterator[Callable[[], Person]]:
    """Makes a person with a home folder of their own; stops what they left running."""
    people: list[Person] = []

    def make() -> Person:
        people.append(Person(tmp_path / f"home{len(people)}", server))
        return people[-1]

    yield make
    for someone in people:
        for live in someone.started:
            live.stop()


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command printed on stderr (no traceback)."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("anonchat: ")
    return lines[0]


def test_register_login_send_inbox_users_logout(person):
    alice, bob = person(), person()
    shown = alice.ok("register", alice.name, "--password-stdin", input=PASSWORD + "\n")
    assert f"registered and logged in as {alice.name}" in shown
    bob.register()
    assert stat.S_IMODE(alice.credentials.stat().st_mode) == 0o600
    assert alice.name in alice.credentials.read_text()

    shown = alice.ok("login", alice.name, "--password-stdin", input=PASSWORD + "\n")
    assert f"logged in as {alice.name}" in shown
    assert f"sent to {bob.name}" in alice.ok("send", bob.name, "Привет, Bob! 👋")
    alice.ok("send", bob.name, input="from standard input ✓\n")

    inbox = bob.ok("inbox").splitlines()
    assert inbox[-2].endswith(f"{alice.name} → {bob.name}: Привет, Bob! 👋")
    assert inbox[-1].endswith(f"{alice.name} → {bob.name}: from standard input ✓")
    lines = [
        json.loads(line) for line in bob.ok("inbox", "--with", alice.name, "--json").splitlines()
    ]
    assert [(m["sender"], m["receiver"], m["content"]) for m in lines] == [
        (alice.name, bob.name, "Привет, Bob! 👋"),
        (alice.name, bob.name, "from standard input ✓"),
    ]
    assert bob.ok("inbox", "--with", alice.name, "--last", "1").count("\n") == 1

    listed = {json.loads(line)["username"] for line in alice.ok("users", "--json").splitlines()}
    assert {alice.name, bob.name} <= listed
    assert bob.name in alice.ok("users")

    assert "logged out" in alice.ok("logout")
    after = alice.run("users")
    assert after.returncode == 3
    assert "not logged in" in one_error_line(after)


def test_chat_between_two_terminals(person):
    alice, bob = person().register(), person().register()
    alice.ok("send", bob.name, "before the chat")
    at_alice, at_bob = alice.start("chat", bob.name), bob.start("chat", alice.name)
    for side in (at_alice, at_bob):
        assert side.expect("before the chat").endswith(f"  {alice.name}: before the chat")

    at_alice.type("hello bob")
    at_bob.type("Здравствуй, Алиса 🌍")
    for side in (at_alice, at_bob):
        assert side.expect("hello bob").endswith(f"  {alice.name}: hello bob")
        assert side.expect("Алиса").endswith(f"  {bob.name}: Здравствуй, Алиса 🌍")
    at_bob.type("   ")  # a blank line sends nothing
    at_bob.type("bye")
    at_alice.expect("bye")
    assert not any(line.endswith(": ") or line.endswith(":    ") for line in at_alice.seen)
    assert at_alice.leave() == 0
    assert at_bob.leave() == 0
    assert at_alice.errors == at_bob.errors == []


def test_names_in_any_script_and_any_letter_case(person):
    alice = person().register()
    gleb = person()
    gleb.name = f"Глеб_{uuid.uuid4().int % 10**9}"
    gleb.register()
    alice.ok("send", gleb.name.upper(), "Привет, Глеб!")
    line = gleb.ok("inbox", "--with", alice.name).splitlines()[-1]
    assert line.endswith(f"{alice.name}: Привет, Глеб!")
    assert f"sent to {alice.name}" in gleb.ok("send", alice.name.upper(), "И тебе 🙂")
    assert f"{gleb.name}: И тебе 🙂" in alice.ok("inbox", "--with", gleb.name.lower())


def test_inbox_follows_new_messages(person):
    alice, bob = person().register(), person().register()
    following = bob.start("inbox", "--with", alice.name, "--follow", "--json")
    alice.ok("send", bob.name, "live one")
    line = json.loads(following.expect("live one"))
    assert (line["sender"], line["content"]) == (alice.name, "live one")


def test_password_change(person):
    alice = person().register()
    new = "a brand new password"
    alice.ok("password", "--password-stdin", input=f"{PASSWORD}\n{new}\n")
    wrong = alice.run("login", alice.name, "--password-stdin", input=PASSWORD + "\n")
    assert wrong.returncode == 3
    alice.ok("login", alice.name, "--password-stdin", input=new + "\n")
    refused = alice.run("password", "--password-stdin", input=f"{PASSWORD}\nanother one 1\n")
    assert refused.returncode == 3
    assert "wrong password" in one_error_line(refused)


def test_bad_input_is_one_readable_line_and_an_exit_code(person, server):
    alice, bob = person().register(), person().register()
    unknown = alice.run("send", "nobody_" + bob.name, "hello")
    assert unknown.returncode == 1
    assert one_error_line(unknown) == f"anonchat: no user named 'nobody_{bob.name}'"
    assert alice.run("chat", "nobody_" + bob.name).returncode == 1

    wrong = bob.run("login", bob.name, "--password-stdin", input="not the password\n")
    assert wrong.returncode == 3
    assert "wrong username or password" in one_error_line(wrong)

    down = f"http://127.0.0.1:{free_port()}"
    unreachable = alice.run("login", alice.name, "--password-stdin", "--server", down, input="x\n")
    assert unreachable.returncode == 4
    assert f"cannot reach the server at {down}" in one_error_line(unreachable)

    invalid = person().run("register", "no spaces", "--password-stdin", input=PASSWORD + "\n")
    assert invalid.returncode == 1
    assert "username:" in one_error_line(invalid)
    assert alice.run("send", bob.name, input="\n").returncode == 2  # nothing to send
    assert alice.run("login", alice.name, "--password-stdin").returncode == 2  # no password

    # A token the server refuses, with no refresh token to renew it.
    saved = json.loads(alice.credentials.read_text())
    entry = saved["servers"][server]
    entry |= {"access_token": "expired", "refresh_token": None}
    alice.credentials.write_text(json.dumps(saved))
    expired = alice.run("users")
    assert expired.returncode == 3
    assert "log in again" in one_error_line(expired)


def test_every_command_has_help(person):
    someone = person()
    assert "chat" in someone.ok("--help")
    for name in cli.commands:
        shown = someone.ok(name, "--help")
        assert shown.startswith(f"Usage: anonchat {name}")
        assert "--server URL" in shown


def until(check: Callable[[], str | None], what: str) -> str:
    """What ``check`` returns once it returns something, polled until TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while (found := check()) is None:
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return found


def shown(someone: Person, text: str, *args: str) -> str:
    """The line with ``text`` that ``anonchat ARGS`` shows, once it does (once stored)."""

    def line() -> str | None:
        return next((x for x in someone.ok(*args).splitlines() if text in x), None)

    return until(line, f"{text!r} not shown by {args}")


def sent_id(someone: Person, to: Person, text: str) -> int:
    return int(json.loads(someone.ok("send", to.name, text, "--json"))["id"])


def test_delete_a_message_and_who_may_not(person):
    alice, bob, carol = person().register(), person().register(), person().register()
    oops = sent_id(alice, bob, "oops, wrong person")
    assert shown(bob, "oops", "inbox").lstrip().startswith(f"{oops}  ")

    by_receiver = bob.run("delete", str(oops))
    assert by_receiver.returncode == 1
    assert "only its sender can delete a message" in one_error_line(by_receiver)
    by_stranger = carol.run("delete", str(oops))
    assert by_stranger.returncode == 1
    one_error_line(by_stranger)
    for bad in ("0", "first", str(2**63)):
        assert alice.run("delete", bad).returncode == 2

    assert f"message {oops} deleted" in alice.ok("delete", str(oops))
    assert "oops" not in bob.ok("inbox")
    again = alice.run("delete", str(oops))
    assert again.returncode == 1
    one_error_line(again)


def test_block_unblock_and_blocks(person):
    alice, bob = person().register(), person().register()
    assert f"{alice.name} is blocked" in bob.ok("block", alice.name.upper())
    [listed] = [json.loads(line) for line in bob.ok("blocks", "--json").splitlines()]
    assert listed["username"] == alice.name
    assert bob.ok("blocks").startswith(f"{alice.name}  blocked since ")

    refused = bob.run("send", alice.name, "hello?")
    assert refused.returncode == 1
    assert "unblock" in one_error_line(refused)
    unknown = bob.run("block", "nobody_" + alice.name)
    assert unknown.returncode == 1
    assert one_error_line(unknown) == f"anonchat: no user named 'nobody_{alice.name}'"

    alice.ok("send", bob.name, "you will not see this")
    shown(alice, "you will not see this", "inbox", "--with", bob.name)  # stored
    assert "you will not see this" not in bob.ok("inbox")
    assert f"{alice.name} is no longer blocked" in bob.ok("unblock", alice.name)
    assert bob.ok("blocks") == ""
    alice.ok("send", bob.name, "now you do")
    assert shown(bob, "now you do", "inbox", "--with", alice.name).endswith(
        f"{alice.name}: now you do"
    )


def test_receipts_read_and_deleted_shown_live_in_the_chat(person):
    alice, bob = person().register(), person().register()
    assert alice.ok("receipts") == "read receipts are off\n"
    assert alice.ok("receipts", "on") == "read receipts are on\n"
    assert json.loads(bob.ok("receipts", "on", "--json")) == {"read_receipts": True}
    assert alice.run("receipts", "maybe").returncode == 2

    at_alice = alice.start("chat", bob.name)
    at_bob = bob.start("chat", alice.name)
    at_alice.type("are you there?")
    at_bob.expect("are you there?")  # shown to bob, so marked read
    assert f"✓ read by {bob.name} up to: are you there?" in at_alice.expect("✓ read by")

    question = json.loads(shown(alice, "are you there?", "inbox", "--with", bob.name, "--json"))
    assert question["read_at"] is not None
    assert shown(alice, "are you there?", "inbox").endswith("are you there?  ✓ read")
    alice.ok("delete", str(question["id"]))
    for side in (at_alice, at_bob):
        assert side.expect("[deleted]").endswith(f"  {alice.name}: are you there?")
    assert at_alice.leave() == at_bob.leave() == 0
    assert at_alice.errors == at_bob.errors == []


def test_inbox_shows_the_last_messages_and_the_unread_counts(person):
    alice, bob = person().register(), person().register()
    for n in range(3):
        alice.ok("send", bob.name, f"number {n}")
    shown(alice, "number 2", "inbox")  # stored
    unread = json.loads(bob.ok("inbox", "--conversations", "--json"))
    assert (unread["username"], unread["unread"]) == (alice.name, 3)
    assert bob.ok("inbox", "-c").strip() == f"3 unread  {alice.name}"

    last_two = bob.ok("inbox", "--with", alice.name, "--last", "2").splitlines()
    assert [line.rsplit(": ", 1)[1] for line in last_two] == ["number 1", "number 2"]
    assert bob.ok("inbox", "-c").strip() == f"0 unread  {alice.name}"
    assert bob.run("inbox", "-c", "--with", alice.name).returncode == 2
    assert bob.run("inbox", "--last", "-1").returncode == 2


def test_delete_account_asks_needs_the_password_and_leaves_a_deleted_account(person, server):
    alice, bob = person().register(), person().register()
    bob.ok("send", alice.name, "hello alice")
    shown(bob, "hello alice", "inbox")  # stored

    kept = alice.run("delete-account", "--password-stdin", input="n\n")
    assert kept.returncode == 1
    assert kept.stderr.rstrip().endswith("anonchat: nothing erased")
    wrong = alice.run("delete-account", "--yes", "--password-stdin", input="not it\n")
    assert wrong.returncode == 3
    assert "wrong password" in one_error_line(wrong)
    assert "hello alice" in alice.ok("inbox")

    erased = alice.ok("delete-account", "--password-stdin", input=f"y\n{PASSWORD}\n")
    assert f"account {alice.name} erased" in erased
    assert server not in json.loads(alice.credentials.read_text())["servers"]
    after = alice.run("users")
    assert after.returncode == 3
    assert "not logged in" in one_error_line(after)

    line = shown(bob, "deleted account: hello alice", "inbox")
    assert line.endswith(f"{bob.name} → deleted account: hello alice")
    assert bob.ok("inbox", "-c").strip() == "0 unread  deleted account"
    [message] = [json.loads(x) for x in bob.ok("inbox", "--json").splitlines()]
    assert message["receiver"] is None
    assert alice.run("login", alice.name, "--password-stdin", input=PASSWORD + "\n").returncode == 3
