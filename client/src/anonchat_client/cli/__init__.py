"""``anonchat``: chat on an anonchat server from a terminal, on the client library.

Exit codes: 0 done, 1 refused by the server (unknown user, bad input...), 2 bad usage,
3 not logged in / wrong password / session over, 4 server unreachable or unavailable,
130 interrupted."""

from __future__ import annotations

import _thread
import functools
import itertools
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import click

from anonchat_client._client import Client
from anonchat_client._core import DEFAULT_SERVER, __version__
from anonchat_client._errors import (
    AnonchatError,
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    SessionExpired,
    Unauthorized,
    Unavailable,
)
from anonchat_client._models import (
    DeletedEvent,
    Event,
    FailedEvent,
    Message,
    MessageEvent,
    ReadEvent,
    User,
)
from anonchat_client.cli.directory import Directory
from anonchat_client.cli.output import Output
from anonchat_client.sessions import CredentialsFile

EXIT_REFUSED, EXIT_AUTH, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 1, 3, 4, 130
# A command line gives up sooner than a program: a person is waiting.
RETRY_SECONDS = 5.0
# Errors a chat survives: the line is not sent, the next one may be.
_LINE_REFUSED = (InvalidInput, Conflict, NotFound, RateLimited)
# The most messages the server answers in one page.
MAX_PAGE = 1000


def describe(error: AnonchatError, server: str) -> tuple[str, int]:
    """One line for a person, and the exit code."""
    if isinstance(error, SessionExpired):
        if error.code == "not_logged_in":
            return f"not logged in to {server}: run `anonchat login NAME` first", EXIT_AUTH
        return "your session has expired: log in again with `anonchat login NAME`", EXIT_AUTH
    if isinstance(error, Unauthorized):
        return error.detail, EXIT_AUTH
    if isinstance(error, Unavailable) and error.status is None:
        hint = "is it running? (--server URL or ANONCHAT_SERVER picks another)"
        return f"{error.detail}: {hint}", EXIT_UNREACHABLE
    if isinstance(error, Unavailable):
        return f"the server is unavailable ({error.detail}); try again shortly", EXIT_UNREACHABLE
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return f"{error.detail}: try again in {error.retry_after:.0f} s", EXIT_REFUSED
    return error.detail, EXIT_REFUSED


def complain(message: str) -> None:
    click.echo(f"anonchat: {message}", err=True)


@dataclass
class App:
    """What a command works with: the client (its session in the credentials file), the
    output, the users met and the messages shown (which later events refer to)."""

    server: str
    out: Output
    client: Client = field(init=False)
    directory: Directory = field(init=False)
    shown: dict[int, Message] = field(init=False, default_factory=dict)
    with_ids: bool = False

    def __post_init__(self) -> None:
        self.server = self.server.rstrip("/")
        self.client = Client(
            self.server, store=CredentialsFile(self.server), retry_deadline=RETRY_SECONDS
        )
        self.directory = Directory(self.client)

    def me(self) -> User:
        """The logged-in user (``not logged in`` if nobody is)."""
        session = self.client.session
        if session is None or session.username is None:
            raise SessionExpired("not logged in", code="not_logged_in")
        if session.user_id is None:
            found = self.directory.by_name(session.username)
            self.client.use_session(replace(session, user_id=found.id))
            return found
        return self.directory.remember(User(session.user_id, session.username))

    def show(self, message: Message, *, conversation: bool) -> None:
        self.shown[message.id] = message
        self.out.message(
            message,
            sender=self.directory.name_of(message.sender_id),
            receiver=self.directory.name_of(message.receiver_id),
            conversation=conversation,
            with_id=self.with_ids,
        )

    def history(self, peer: User | None, last: int) -> int:
        """Show the last ``last`` messages (all if 0), with ``peer`` or with everyone, and
        mark them read; the cursor to follow the stream from."""
        # With nothing shown, the stream picks up after the newest message of any
        # conversation: read first, so that one with ``peer`` stored meanwhile is shown.
        floor = self.newest_cursor() if peer is not None else 0
        with_user = peer.id if peer else None
        if last:
            # Read back from the newest: only the pages shown are fetched.
            newest = self.client.messages(
                with_user, newest_first=True, page_size=min(last, MAX_PAGE)
            )
            recent = list(itertools.islice(newest, last))[::-1]
        else:
            recent = list(self.client.messages(with_user, page_size=MAX_PAGE))
        for message in recent:
            self.show(message, conversation=peer is not None)
        self.mark_read(recent)
        return max((m.cursor for m in recent if m.cursor is not None), default=floor)

    def newest_cursor(self) -> int:
        """The cursor of the caller's newest message (0 if none)."""
        newest = next(iter(self.client.messages(newest_first=True, page_size=1)), None)
        return newest.cursor if newest is not None and newest.cursor is not None else 0

    def mark_read(self, messages: Iterable[Message]) -> None:
        """Tell the server each conversation was read up to the last of ``messages``
        received. A failure is said, and the rest goes on: it only costs an unread count."""
        me = self.me().id
        up_to: dict[int, int] = {}
        for message in messages:
            received = message.receiver_id == me and message.sender_id != me
            if received and message.cursor is not None:
                up_to[message.sender_id] = max(message.cursor, up_to.get(message.sender_id, 0))
        for sender, cursor in up_to.items():
            try:
                self.client.mark_read(sender, up_to=cursor)
            except (Unavailable, RateLimited, NotFound, InvalidInput) as exc:
                complain(f"could not mark as read: {describe(exc, self.server)[0]}")

    def follow(self, events: Iterable[Event], peer: User | None) -> None:
        """Show each new message, deletion and read receipt (with ``peer`` only, if
        given) as it comes; mark what is shown read."""

        def concerns(*users: int) -> bool:
            return peer is None or peer.id in users

        conversation = peer is not None
        for event in events:
            if isinstance(event, MessageEvent):
                message = event.message
                if concerns(message.sender_id, message.receiver_id):
                    self.show(message, conversation=conversation)
                    self.mark_read([message])
            elif isinstance(event, FailedEvent) and concerns(event.receiver_id):
                complain(f"message {event.id} could not be stored: {event.reason}")
            elif isinstance(event, DeletedEvent) and concerns(event.sender_id, event.receiver_id):
                self.out.deleted(
                    event,
                    self.shown.pop(event.id, None),
                    sender=self.directory.name_of(event.sender_id),
                    receiver=self.directory.name_of(event.receiver_id),
                    conversation=conversation,
                )
            elif isinstance(event, ReadEvent) and concerns(event.reader_id):
                up_to = next((m for m in self.shown.values() if m.cursor == event.up_to), None)
                self.out.read(event, up_to, reader=self.directory.name_of(event.reader_id))


def _password(*, from_stdin: bool, confirm: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: no password on standard input")
        return password
    entered: str = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return entered


def command(group: click.Group, name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A subcommand of ``group`` with ``--server`` and ``--json``, given an :class:`App`,
    whose library errors end it with one line on stderr and an exit code."""

    def decorate(run: Callable[..., None]) -> click.Command:
        @group.command(name, help=run.__doc__)
        @click.option(
            "--server",
            envvar="ANONCHAT_SERVER",
            default=DEFAULT_SERVER,
            show_default=True,
            metavar="URL",
            help="The server's URL (or ANONCHAT_SERVER).",
        )
        @click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
        @functools.wraps(run)
        def invoke(server: str, as_json: bool, **options: Any) -> None:
            app = App(server, Output(as_json=as_json))
            try:
                run(app, **options)
            except AnonchatError as exc:
                message, code = describe(exc, app.server)
                complain(message)
                sys.exit(code)
            except KeyboardInterrupt:
                sys.exit(EXIT_INTERRUPTED)
            finally:
                app.client.close()

        return invoke

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="anonchat")
def cli() -> None:
    """Chat on an anonchat server from a terminal.

    Log in once (`anonchat register NAME` or `anonchat login NAME`), then `anonchat chat
    USER` to talk. The session is kept in $XDG_CONFIG_HOME/anonchat/credentials.json."""


_password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input."
)


@command(cli, "register")
@click.argument("name")
@_password_stdin
def register(app: App, name: str, password_stdin: bool) -> None:
    """Register NAME (the password is asked for), and log in as NAME."""
    password = _password(from_stdin=password_stdin, confirm=True)
    user = app.client.register(name, password)
    session = app.client.login(name, password)
    app.client.use_session(replace(session, user_id=user.id))
    app.out.done(f"registered and logged in as {user.username} (id {user.id})", id=user.id)


@command(cli, "login")
@click.argument("name")
@_password_stdin
def login(app: App, name: str, password_stdin: bool) -> None:
    """Log in as NAME (the password is asked for); the session is kept until logout."""
    password = _password(from_stdin=password_stdin, confirm=False)
    app.client.login(name, password)
    me = app.me()
    app.out.done(f"logged in as {me.username} (id {me.id})", id=me.id)


@command(cli, "logout")
def logout(app: App) -> None:
    """End the session and forget it."""
    app.client.logout()
    app.out.done("logged out")


@command(cli, "password")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the old password, then the new one, from standard input (a line each).",
)
def password(app: App, password_stdin: bool) -> None:
    """Change your password (the old one is asked first); your other sessions end."""
    if password_stdin:
        old, new = (_password(from_stdin=True, confirm=False) for _ in range(2))
    else:
        old = click.prompt("Current password", hide_input=True)
        new = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    app.client.change_password(old, new)
    app.out.done("password changed; your other sessions have ended")


@command(cli, "users")
def users(app: App) -> None:
    """Everyone registered: id and name."""
    for user in app.client.users():
        app.out.user(user)


@command(cli, "send")
@click.argument("user")
@click.argument("text", required=False)
def send(app: App, user: str, text: str | None) -> None:
    """Send TEXT (else standard input) to USER."""
    if text is None:
        text = sys.stdin.read().rstrip("\r\n")
    if not text.strip():
        raise click.UsageError("nothing to send")
    app.me()
    receiver = app.directory.by_name(user)
    app.out.sent(app.client.send(receiver.id, text), receiver=receiver.username)


_last = click.option(
    "--last",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many of the latest messages to show (0: all).",
)


@command(cli, "inbox")
@click.option("--with", "with_", metavar="USER", help="Only the conversation with USER.")
@click.option("--follow", "-f", is_flag=True, help="Then show new messages as they come.")
@click.option(
    "--conversations",
    "-c",
    "list_conversations",
    is_flag=True,
    help="List your conversations instead, the latest first, with their unread counts.",
)
@_last
def inbox(app: App, with_: str | None, follow: bool, list_conversations: bool, last: int) -> None:
    """Your last messages, oldest first, each with its id (for `anonchat delete`); they
    are marked read. --follow keeps showing new ones, and deletions and read receipts."""
    app.me()
    if list_conversations:
        if with_ or follow:
            raise click.UsageError("--conversations lists them all: no --with or --follow")
        for conversation in app.client.conversations(limit=MAX_PAGE):
            name = app.directory.name_of(conversation.user_id)
            app.out.conversation(conversation, name=name)
        return
    app.with_ids = True
    peer = app.directory.by_name(with_) if with_ else None
    cursor = app.history(peer, last)
    if follow:
        app.follow(app.client.events(cursor), peer)


@command(cli, "chat")
@click.argument("user")
@_last
def chat(app: App, user: str, last: int) -> None:
    """Talk with USER: the last messages, then new ones as they come (and which were
    deleted, and read where you both send read receipts), while each line typed is
    sent. What is shown is marked read. Ctrl-D (end of input) leaves."""
    app.me()
    peer = app.directory.by_name(user)
    cursor = app.history(peer, last)
    stdin = sys.stdin
    if stdin.isatty():
        click.echo(f"chatting with {peer.username}; Ctrl-D leaves", err=True)
    failures: list[AnonchatError] = []
    # Once the input has ended, the client closes under the stream's thread: whatever
    # that thread meets then is the leaving, not a failure to report.
    leaving = threading.Event()

    def listen() -> None:
        try:
            app.follow(app.client.events(cursor), peer)
        except AnonchatError as exc:
            if not leaving.is_set():
                failures.append(exc)
                _thread.interrupt_main()
        except Exception:
            if not leaving.is_set():
                raise

    threading.Thread(target=listen, name="events", daemon=True).start()
    try:
        for line in _lines(stdin):
            try:
                app.client.send(peer.id, line)
            except _LINE_REFUSED as exc:
                complain(f"not sent: {describe(exc, app.server)[0]}")
    except KeyboardInterrupt:
        if failures:
            raise failures[0] from None
        raise
    finally:
        leaving.set()


@command(cli, "delete")
@click.argument("message_id", metavar="MESSAGE_ID", type=click.IntRange(min=1, max=2**63 - 1))
def delete(app: App, message_id: int) -> None:
    """Delete MESSAGE_ID, a message you sent (`inbox` shows the ids), for both of you."""
    app.client.delete_message(message_id)
    app.out.done(f"message {message_id} deleted", id=message_id)


@command(cli, "block")
@click.argument("user")
def block(app: App, user: str) -> None:
    """Block USER: nothing they send reaches you from now on (they cannot tell), and
    you cannot send to them."""
    blocked = app.directory.by_name(user)
    app.client.block(blocked.id)
    app.out.done(f"{blocked.username} is blocked", user_id=blocked.id)


@command(cli, "unblock")
@click.argument("user")
def unblock(app: App, user: str) -> None:
    """Unblock USER: what they send from now on reaches you (not what they sent meanwhile)."""
    unblocked = app.directory.by_name(user)
    app.client.unblock(unblocked.id)
    app.out.done(f"{unblocked.username} is no longer blocked", user_id=unblocked.id)


@command(cli, "blocks")
def blocks(app: App) -> None:
    """Whom you block, and since when."""
    for each in app.client.blocks():
        app.out.block(each, name=app.directory.name_of(each.user_id))


@command(cli, "receipts")
@click.argument("state", type=click.Choice(["on", "off"]), required=False)
def receipts(app: App, state: str | None) -> None:
    """Whether you send read receipts; `on` or `off` changes it. Receipts go both ways:
    you see when someone read your messages only while you both have them on."""
    me = app.client.me() if state is None else app.client.set_read_receipts(state == "on")
    app.out.receipts(me)


@command(cli, "delete-account")
@_password_stdin
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_account(app: App, password_stdin: bool, yes: bool) -> None:
    """Erase your account, for good: your sessions end, every message you sent is
    deleted for both sides; messages you received stay with their senders, who see a
    deleted account. Asks first (unless --yes), then for your password (with
    --password-stdin and no --yes, standard input holds the answer, then the password)."""
    me = app.me()
    question = f"Erase the account {me.username} and every message you sent?"
    try:
        confirmed = yes or click.confirm(question, err=True)
    except click.Abort:  # end of input: no answer is no
        confirmed = False
    if not confirmed:
        complain("nothing erased")
        sys.exit(EXIT_REFUSED)
    app.client.delete_account(_password(from_stdin=password_stdin, confirm=False))
    app.out.done(f"account {me.username} erased; you are logged out", id=me.id)


def _lines(stream: Iterable[str]) -> Iterator[str]:
    for line in stream:
        text = line.rstrip("\r\n")
        if text.strip():
            yield text


def main() -> None:
    """The ``anonchat`` command."""
    cli(prog_name="anonchat")
