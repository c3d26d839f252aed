"""The web page at ``/``, in Debian's Chromium, against the real stack: people sign in,
find each other and chat live; the page survives reloads and lost networks, shows
refusals in words, never runs what a message says, and passes an accessibility check."""

from __future__ import annotations

import os
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, expect

from tests.api import PASSWORD, User, eventually, login, new_user, register, send, unique_name
from tests.browser import TIMEOUT_MS, Person, Watch, chromium
from tests.harness.stack import RunningStack, gateways

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "conversation.png"

People = Callable[..., Person]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def people(browser: Browser, running_stack: RunningStack) -> Iterator[People]:
    """Makes people, each in a browser context of their own, at the stack's gateway (or
    ``origin``); checks what each context did once the test is over."""
    made: list[tuple[Any, Watch]] = []

    def person(origin: str = running_stack.gateway_url, **options: Any) -> Person:
        context = browser.new_context(base_url=origin, **options)
        context.set_default_timeout(TIMEOUT_MS)
        watch = Watch(origin)
        made.append((context, watch))
        return Person(context, watch)

    yield person
    for context, _ in made:
        context.close()
    for _, watch in made:
        watch.check()


def signed_up(person: Person, name: str | None = None) -> str:
    """``person`` registers through the page under a new name, and is signed in."""
    name = name or unique_name("web")
    person.open()
    person.sign_in(name, register=True)
    person.signed_in(name)
    return name


def user_named(gateway: httpx.Client, name: str) -> User:
    """A user registered through the page, as the API sees them."""
    headers = login(gateway, name)
    users = gateway.get("/get_users", params={"limit": 1000}, headers=headers).json()
    found = [u for u in users if u["username"] == name]
    while not found:
        after = users[-1]["id"]
        users = gateway.get(
            "/get_users", params={"limit": 1000, "after_id": after}, headers=headers
        ).json()
        assert users, f"{name} is not listed"
        found = [u for u in users if u["username"] == name]
    return User(found[0]["id"], name, headers)


def stored_messages(gateway: httpx.Client, reader: User, other: User) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = gateway.get(
        "/get_messages", params={"with_user": other.id, "limit": 1000}, headers=reader.headers
    ).json()
    return listed


def stored_contents(gateway: httpx.Client, reader: User, other: User) -> list[str]:
    return [m["content"] for m in stored_messages(gateway, reader, other)]


@contextmanager
def workers_paused(running_stack: RunningStack) -> Iterator[None]:
    """The stack's workers stopped (SIGSTOP) for a moment: sends are queued, not stored."""
    workers = [p for name, p in running_stack.processes.items() if name.startswith("worker")]
    for worker in workers:
        os.killpg(worker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGCONT)


def test_two_people_find_each_other_and_chat_live(people: People) -> None:
    anna, boris = people(viewport={"width": 960, "height": 600}), people()
    # Names in any script: the page shows them as they were registered.
    signed_up(anna, "Анна")
    # Boris registers after Anna's list was read: the search finds him all the same.
    signed_up(boris, "Борис")
    anna.talk_to("Борис")
    anna.write("Привет, Борис! 👋")
    expect(anna.page.locator(".message.mine .state")).to_have_text(["Stored"])
    # Boris sees who wrote, live, with the count of what he has not read.
    expect(boris.user_button("Анна")).to_have_accessible_name("Анна, 1 unread")
    # The search ignores letter case, in any script.
    boris.talk_to("Анна", search="анна")
    expect(boris.user_button("Анна").locator(".badge")).to_be_hidden()
    assert boris.texts() == ["Привет, Борис! 👋"]
    boris.write("Привет, Анна! Всё хорошо 🙂\nА у тебя?")
    expect(anna.page.locator(".message.theirs .text")).to_have_text(
        ["Привет, Анна! Всё хорошо 🙂\nА у тебя?"]
    )
    anna.write("Отлично! Тестирую новый чат 🚀")
    boris.write("Работает быстро ⚡")
    anna.write("И безопасно: <b>это</b> просто текст 🔒")
    conversation = [
        "Привет, Борис! 👋",
        "Привет, Анна! Всё хорошо 🙂\nА у тебя?",
        "Отлично! Тестирую новый чат 🚀",
        "Работает быстро ⚡",
        "И безопасно: <b>это</b> просто текст 🔒",
    ]
    for person in (anna, boris):
        expect(person.page.locator("#messages .text")).to_have_text(conversation)
        expect(person.page.locator(".message.mine .state")).to_have_text(
            ["Stored"] * (3 if person is anna else 2)
        )
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    anna.page.evaluate("document.activeElement.blur()")
    anna.page.screenshot(path=SCREENSHOT)


def test_own_messages_show_queued_then_stored(
    people: People, gateway: httpx.Client, running_stack: RunningStack
) -> None:
    other = new_user(gateway)
    person = people()
    signed_up(person)
    person.talk_to(other.name)
    state = person.page.locator(".message.mine .state")
    with workers_paused(running_stack):
        person.write("wait for a worker")
        expect(state).to_have_text(["Queued"])
    expect(state).to_have_text(["Stored"])


def test_unread_counts_come_from_the_server_and_clear_on_open(
    people: People, gateway: httpx.Client
) -> None:
    anna, carol = new_user(gateway), new_user(gateway)
    send(gateway, anna, carol.id, "to carol, before")
    person = people()
    name = signed_up(person)
    me = user_named(gateway, name)
    send(gateway, anna, me.id, "before the page looked")
    # Counted by the server: a reload reads them from GET /conversations.
    person.page.reload()
    person.signed_in(name)
    expect(person.user_button(anna.name)).to_have_accessible_name(f"{anna.name}, 1 unread")
    person.talk_to(carol.name)
    send(gateway, anna, me.id, "two")
    send(gateway, carol, me.id, "in the open conversation")
    person.page.get_by_label("Find someone").fill("")
    expect(person.user_button(anna.name)).to_have_accessible_name(f"{anna.name}, 2 unread")
    expect(person.page.locator("#messages .text")).to_have_text(["in the open conversation"])
    expect(person.user_button(carol.name)).to_have_accessible_name(carol.name)
    expect(person.page).to_have_title("(2) anonchat")
    # Those who wrote last come first.
    first_two = (
        person.page.locator("#users .name").nth(0),
        person.page.locator("#users .name").nth(1),
    )
    expect(first_two[0]).to_have_text(carol.name)
    expect(first_two[1]).to_have_text(anna.name)
    person.talk_to(anna.name)
    expect(person.user_button(anna.name)).to_have_accessible_name(anna.name)
    expect(person.page).to_have_title("anonchat")
    # The server was told: its counts are cleared too, and stay so after a reload.
    assert eventually(lambda: unread_counts(gateway, me) == {anna.id: 0, carol.id: 0})
    person.page.reload()
    person.signed_in(name)
    expect(person.page.locator("#messages .text")).to_have_text(["before the page looked", "two"])
    expect(person.user_button(anna.name)).to_have_accessible_name(anna.name)
    expect(person.page).to_have_title("anonchat")


def sends_receipts(gateway: httpx.Client, user: User) -> bool:
    me = gateway.get("/me", headers=user.headers)
    assert me.status_code == 200, me.text
    return bool(me.json()["read_receipts"])


def unread_counts(gateway: httpx.Client, user: User) -> dict[int, int]:
    listed = gateway.get("/conversations", headers=user.headers)
    assert listed.status_code == 200, listed.text
    return {c["user_id"]: c["unread"] for c in listed.json()}


def test_a_reload_keeps_the_session_and_the_history(people: People, gateway: httpx.Client) -> None:
    other = new_user(gateway)
    person = people()
    name = signed_up(person)
    me = user_named(gateway, name)
    send(gateway, other, me.id, "before the reload")
    person.talk_to(other.name)
    person.write("mine, before the reload")
    expect(person.page.locator(".message.mine .state")).to_have_text(["Stored"])
    person.page.reload()
    person.signed_in(name)
    expect(person.page.locator("#peer")).to_have_text(other.name)
    expect(person.page.locator("#messages .text")).to_have_text(
        ["before the reload", "mine, before the reload"]
    )
    send(gateway, other, me.id, "after the reload")
    expect(person.page.locator("#messages .text")).to_have_text(
        ["before the reload", "mine, before the reload", "after the reload"]
    )
    # Another browser (or a closed one) has no session: it asks to log in.
    elsewhere = people()
    elsewhere.open()
    expect(elsewhere.page.get_by_role("button", name="Log in")).to_be_visible()
    # Logging out ends the session on the server, forgets the token, and leaves nothing
    # of the session on the page.
    token = saved_session(person)["token"]
    person.page.get_by_role("button", name="Log out").click()
    expect(person.page.get_by_role("button", name="Log in")).to_be_visible()
    assert person.page.evaluate("sessionStorage.length") == 0
    assert person.page.locator("#messages li, #users li").count() == 0
    refused = eventually(
        lambda: (
            gateway.get("/get_users", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        ),
        timeout=2,
    )
    assert refused
    person.page.reload()
    expect(person.page.get_by_role("button", name="Log in")).to_be_visible()


def saved_session(person: Person) -> dict[str, Any]:
    saved: dict[str, Any] = person.page.evaluate(
        "JSON.parse(sessionStorage.getItem('anonchat.session'))"
    )
    return saved


def test_a_refused_access_token_is_renewed_with_the_refresh_token(
    people: People, gateway: httpx.Client
) -> None:
    other = new_user(gateway)
    person = people()
    name = signed_up(person)
    before = saved_session(person)
    # As when the 15 minutes of an access token are over.
    person.page.evaluate(
        """() => {
            const session = JSON.parse(sessionStorage.getItem("anonchat.session"));
            session.token = session.token.slice(0, -4) + "AAAA";
            sessionStorage.setItem("anonchat.session", JSON.stringify(session));
        }"""
    )
    person.page.reload()
    person.signed_in(name)
    person.talk_to(other.name)
    person.write("still here")
    expect(person.page.locator(".message.mine .state")).to_have_text(["Stored"])
    after = saved_session(person)
    assert after["token"] != before["token"]
    assert after["refreshToken"] != before["refreshToken"]


def test_a_session_ended_elsewhere_asks_to_log_in_again(
    people: People, gateway: httpx.Client
) -> None:
    person = people()
    signed_up(person)
    token = saved_session(person)["token"]
    expect(person.page.get_by_role("status")).to_have_text("")
    # Logged out from another device: the open stream is told, the refresh is refused.
    ended = gateway.post("/logout", headers={"Authorization": f"Bearer {token}"})
    assert ended.status_code == 204
    expect(person.page.get_by_role("alert")).to_have_text(
        "Your session has ended: please log in again."
    )
    expect(person.page.get_by_label("Name")).to_be_focused()
    assert person.page.evaluate("sessionStorage.length") == 0


MARKUP = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '<svg onload="alert(3)"></svg><b>bold?</b>',
]


def test_markup_in_a_message_is_shown_as_text_and_runs_nothing(
    people: People, gateway: httpx.Client
) -> None:
    other = new_user(gateway)
    person = people()
    me = user_named(gateway, signed_up(person))
    send(gateway, other, me.id, MARKUP[0])
    person.talk_to(other.name)
    for content in MARKUP[1:]:
        send(gateway, other, me.id, content)  # these arrive live
    person.write(MARKUP[0])
    expect(person.page.locator("#messages .text")).to_have_text([*MARKUP, MARKUP[0]])
    expect(person.page.locator(".message.mine .state")).to_have_text(["Stored"])
    page = person.page
    assert page.evaluate("document.querySelectorAll('img, script:not([src]), svg, b').length") == 0
    assert person.watch.dialogs == []


def test_offline_and_back_catches_up_without_a_gap_or_a_duplicate(
    people: People, gateway: httpx.Client
) -> None:
    other = new_user(gateway)
    person = people()
    me = user_named(gateway, signed_up(person))
    send(gateway, other, me.id, "before")
    person.talk_to(other.name)
    expect(person.page.locator("#messages .text")).to_have_text(["before"])
    person.context.set_offline(True)
    expect(person.page.get_by_role("status")).to_have_text(
        "Offline: reconnecting when the network is back…"
    )
    for n in range(3):
        send(gateway, other, me.id, f"while away {n}")
    person.write("written offline")
    expect(person.page.locator(".message.mine .state")).to_have_text(
        ["Offline: it goes when the network is back."]
    )
    person.context.set_offline(False)
    expect(person.page.get_by_role("status")).to_have_text("")
    expect(person.page.locator("#messages .text")).to_have_text(
        ["before", "while away 0", "while away 1", "while away 2", "written offline"]
    )
    expect(person.page.locator(".message.mine .state")).to_have_text(["Stored"])
    # Sent once, however often it was tried; and the view got each message once.
    assert stored_contents(gateway, me, other).count("written offline") == 1
    send(gateway, other, me.id, "and live again")
    expect(person.page.locator("#messages .text")).to_have_count(6)


def test_bad_input_is_said_in_words(people: People, gateway: httpx.Client) -> None:
    taken = new_user(gateway)
    person = people()
    page = person.open()
    alert = page.get_by_role("alert")
    person.sign_in(taken.name, password="not the password")
    expect(alert).to_have_text("Wrong name or password.")
    person.sign_in(taken.name.upper(), register=True)
    expect(alert).to_have_text("That name is taken: pick another.")
    person.sign_in("ab", register=True)
    expect(alert).to_have_text("The name must be 3 to 32 characters long.")
    digits = str(uuid.uuid4().int)[:12]
    assert register(gateway, f"ace{digits}").status_code == 201
    person.sign_in(f"асе{digits}", register=True)  # Cyrillic letters drawn like "ace"
    expect(alert).to_have_text("That name looks too much like one already taken: pick another.")
    person.sign_in(f"аce{digits}", register=True)  # a Cyrillic "а", then Latin
    expect(alert).to_have_text(
        "The name mixes scripts that look alike (Cyrillic and Latin): use one script."
    )
    person.sign_in(unique_name("web"), register=True, password="short")
    expect(alert).to_have_text("The password must be at least 8 characters long.")
    person.sign_in("", password="")
    expect(alert).to_have_text("Enter a name and a password.")
    name = unique_name("web")
    person.sign_in(name, register=True)
    person.signed_in(name)
    person.talk_to(taken.name)
    person.write("x" * 4001)
    expect(page.locator(".message.mine .state")).to_have_text(
        ["Failed: The message must be at most 4000 characters long."]
    )
    person.write("   ")
    expect(page.locator(".message.mine")).to_have_count(1)
    assert '{"' not in page.locator("body").inner_text()


def test_rate_limits_say_how_long_to_wait(
    people: People, gateway: httpx.Client, running_stack: RunningStack, unit_redis_url: str
) -> None:
    limits = {
        "GATEWAY_LOGIN_RATE_PER_USERNAME": "1/60",
        "GATEWAY_LOGIN_RATE_PER_ADDRESS": "1000000/1",
        "MESSAGE_SERVICE_SEND_RATE_PER_USER": "1/60",
    }
    sender, guessed, other = (unique_name("web") for _ in range(3))
    for name in (sender, guessed, other):
        assert register(gateway, name).status_code == 201
    with gateways(running_stack, unit_redis_url, limits, 1) as (limited,):
        person = people(limited)
        person.open()
        person.sign_in(sender)
        person.signed_in(sender)
        person.talk_to(other)
        person.write("the one allowed")
        expect(person.page.locator(".message.mine .state")).to_have_text(["Stored"])
        person.write("one too many")
        state = person.page.locator(".message.mine .state").nth(1)
        expect(state).to_have_text(re.compile(r"^Failed: Too many messages: try again in \d+ s\.$"))
        expect(person.page.get_by_role("button", name="Try again")).to_be_visible()

        guesser = people(limited)
        guesser.open()
        guesser.sign_in(guessed, password="not the password")
        alert = guesser.page.get_by_role("alert")
        expect(alert).to_have_text("Wrong name or password.")
        guesser.sign_in(guessed, password=PASSWORD)
        expect(alert).to_have_text(re.compile(r"^Too many login attempts: try again in \d+ s\.$"))


def test_older_pages_come_as_one_scrolls_up_without_a_gap_or_a_duplicate(
    people: People, gateway: httpx.Client
) -> None:
    other = new_user(gateway)
    person = people()
    me = user_named(gateway, signed_up(person))
    for n in range(120):
        send(gateway, other, me.id, f"message {n}")
    eventually(lambda: len(stored_contents(gateway, me, other)) == 120)
    requested: list[str] = []
    person.page.on(
        "request", lambda r: requested.append(r.url) if "/get_messages" in r.url else None
    )
    person.talk_to(other.name)
    texts = person.page.locator("#messages .text")
    expect(texts).to_have_count(50)
    expect(texts.last).to_have_text("message 119")
    expect(texts.last).to_be_in_viewport()
    # Live while the history pages in: it joins once, at the end.
    send(gateway, other, me.id, "live")
    expect(texts.last).to_have_text("live")
    log = person.page.locator("#log")
    log.evaluate("log => log.scrollTo(0, 0)")
    expect(texts).to_have_count(101)
    expect(texts.first).to_have_text("message 20")
    # The view stays where one was reading, not at the new top.
    expect(person.page.get_by_text("message 70", exact=True)).to_be_in_viewport()
    # From the keyboard: the log takes focus, and Home scrolls it to the top.
    person.page.get_by_role("log").focus()
    person.page.keyboard.press("Home")
    expect(texts).to_have_count(121)
    expect(person.page.get_by_role("button", name="Show older messages")).to_be_hidden()
    assert texts.all_text_contents() == [f"message {n}" for n in range(120)] + ["live"]
    # The newest page first, then each older page the one before named (Link rel="prev").
    assert len(requested) == 3
    assert "before=9223372036854775807" in requested[0]
    assert all("before=" in url for url in requested)


def test_the_keyboard_alone_is_enough(people: People, gateway: httpx.Client) -> None:
    other = new_user(gateway)
    person = people()
    page = person.open()
    keyboard = page.keyboard
    name = unique_name("web")
    expect(page.get_by_label("Name")).to_be_focused()
    keyboard.type(name)
    keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    keyboard.type(PASSWORD)
    keyboard.press("Tab")
    keyboard.press("Tab")
    expect(page.get_by_role("button", name="Register")).to_be_focused()
    keyboard.press("Enter")
    person.signed_in(name)
    expect(page.get_by_label("Find someone")).to_be_focused()
    keyboard.type(other.name)
    keyboard.press("Tab")
    expect(person.user_button(other.name)).to_be_focused()
    keyboard.press("Enter")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    keyboard.type("typed, not clicked")
    keyboard.press("Shift+Enter")
    keyboard.type("on two lines")
    keyboard.press("Enter")
    expect(page.locator(".message.mine .state")).to_have_text(["Stored"])
    assert person.texts() == ["typed, not clicked\non two lines"]
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    # Back from the composer: the own message's Delete button, then the log itself,
    # which takes focus so that it scrolls from the keyboard.
    keyboard.press("Shift+Tab")
    expect(page.locator(".message.mine").get_by_role("button", name="Delete")).to_be_focused()
    keyboard.press("Shift+Tab")
    expect(page.get_by_role("log")).to_be_focused()


def test_a_phone_width_window_shows_one_pane_at_a_time(
    people: People, gateway: httpx.Client
) -> None:
    other = new_user(gateway)
    person = people(viewport={"width": 360, "height": 640}, is_mobile=True, has_touch=True)
    page = person.page
    signed_up(person)
    conversation = page.locator("#conversation")
    expect(conversation).to_be_hidden()
    person.talk_to(other.name)
    expect(page.get_by_label("Find someone")).to_be_hidden()
    person.write("Привет с телефона 📱")
    expect(page.locator(".message.mine .state")).to_have_text(["Stored"])
    expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    expect(page.locator("#conversation").get_by_role("button", name="Block")).to_be_in_viewport()
    page.get_by_role("button", name="People").click()
    expect(conversation).to_be_hidden()
    expect(person.user_button(other.name)).to_be_focused()
    # Settings fit too, scrolled within the dialog.
    settings = person.settings()
    close = settings.get_by_role("button", name="Close")
    close.scroll_into_view_if_needed()
    expect(close).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    close.click()
    expect(settings).to_be_hidden()


def chatting(people: People, gateway: httpx.Client) -> tuple[Person, Person, User, User]:
    """Two people signed in through the page, each with the other's conversation open."""
    anna, boris = people(), people()
    anna_name, boris_name = signed_up(anna), signed_up(boris)
    anna.talk_to(boris_name)
    boris.talk_to(anna_name)
    return anna, boris, user_named(gateway, anna_name), user_named(gateway, boris_name)


def test_deleting_a_message_removes_it_live_on_both_sides(
    people: People, gateway: httpx.Client
) -> None:
    anna, boris, anna_user, boris_user = chatting(people, gateway)
    anna.write("meant to stay")
    anna.write("taken back")
    for person in (anna, boris):
        expect(person.page.locator("#messages .text")).to_have_text(["meant to stay", "taken back"])
    expect(anna.message("taken back").locator(".state")).to_have_text("Stored")
    # Only one's own messages can be taken back.
    expect(boris.page.locator("#messages").get_by_role("button", name="Delete")).to_have_count(0)
    delete = anna.message("taken back").get_by_role("button", name="Delete")
    expect(delete).to_have_accessible_description("taken back")
    # From the keyboard, and asked first: Escape keeps the message.
    delete.focus()
    anna.page.keyboard.press("Enter")
    expect(anna.page.locator("#confirm")).to_be_visible()
    expect(anna.page.locator("#confirm").get_by_role("button", name="Cancel")).to_be_focused()
    anna.page.keyboard.press("Escape")
    expect(anna.page.locator("#confirm")).to_be_hidden()
    expect(delete).to_be_focused()
    delete.click()
    anna.confirm("Delete")
    for person in (anna, boris):
        expect(person.page.locator("#messages .text")).to_have_text(["meant to stay"])
    assert stored_contents(gateway, boris_user, anna_user) == ["meant to stay"]
    boris.page.reload()
    expect(boris.page.locator("#messages .text")).to_have_text(["meant to stay"])


def test_a_blocked_person_s_messages_never_reach_the_page(
    people: People, gateway: httpx.Client
) -> None:
    anna, boris, anna_user, boris_user = chatting(people, gateway)
    carol = new_user(gateway)
    anna.write("before the block")
    expect(boris.page.locator("#messages .text")).to_have_text(["before the block"])
    boris.page.locator("#conversation").get_by_role("button", name="Block", exact=True).click()
    expect(boris.page.locator("#peer-note")).to_have_text(
        f"You block {anna_user.name}: what they send does not reach you."
    )
    expect(boris.user_button(anna_user.name)).to_have_accessible_name(f"{anna_user.name}, blocked")
    anna.write("after the block")
    # The sender sees nothing unusual.
    expect(anna.message("after the block").locator(".state")).to_have_text("Stored")
    expect(anna.page.get_by_role("alert")).to_be_empty()
    # Once something sent later has reached Boris, the blocked message would have too.
    send(gateway, carol, boris_user.id, "sent after it")
    boris.page.get_by_label("Find someone").fill("")
    expect(boris.user_button(carol.name)).to_have_accessible_name(f"{carol.name}, 1 unread")
    expect(boris.page.locator("#messages .text")).to_have_text(["before the block"])
    expect(boris.user_button(anna_user.name)).to_have_accessible_name(f"{anna_user.name}, blocked")
    # Writing to someone one blocks says what to do, in words.
    boris.write("hello?")
    expect(boris.message("hello?").locator(".state")).to_have_text(
        "Failed: You block this user: unblock them first."
    )
    assert '{"' not in boris.page.locator("body").inner_text()
    # Whom one blocks, in settings, where one unblocks them.
    settings = boris.settings()
    unblock = settings.get_by_role("button", name=f"Unblock {anna_user.name}")
    expect(settings.locator("#blocked li")).to_have_text([re.compile(anna_user.name)])
    unblock.click()
    expect(settings.locator("#blocked li")).to_have_count(0)
    expect(settings.get_by_text("You block no one.")).to_be_visible()
    expect(settings.get_by_role("button", name="Close")).to_be_focused()
    boris.page.keyboard.press("Escape")
    expect(settings).to_be_hidden()
    expect(
        boris.page.locator("#conversation").get_by_role("button", name="Block", exact=True)
    ).to_be_visible()
    assert gateway.get("/blocks", headers=boris_user.headers).json() == []
    anna.write("after the unblock")
    # (A failed send stays last, where it can be read and copied.)
    expect(boris.page.locator("#messages .text")).to_have_text(
        ["before the block", "after the unblock", "hello?"]
    )


def test_read_receipts_show_read_live_when_both_send_them(
    people: People, gateway: httpx.Client
) -> None:
    anna, boris, anna_user, boris_user = chatting(people, gateway)
    for person, user in ((anna, anna_user), (boris, boris_user)):
        settings = person.settings()
        receipts = settings.get_by_label("Send and show read receipts")
        expect(receipts).not_to_be_checked()
        receipts.check()
        assert eventually(partial(sends_receipts, gateway, user))
        settings.get_by_role("button", name="Close").click()
        expect(settings).to_be_hidden()
    # Boris has the conversation open: what Anna writes is read as it arrives.
    anna.write("read at once")
    expect(anna.message("read at once").locator(".state")).to_have_text("Read")
    # Boris looks elsewhere: stored, unread, until he opens it again.
    carol = new_user(gateway)
    boris.talk_to(carol.name)
    anna.write("read later")
    expect(anna.message("read later").locator(".state")).to_have_text("Stored")
    boris.page.get_by_label("Find someone").fill("")
    expect(boris.user_button(anna_user.name)).to_have_accessible_name(f"{anna_user.name}, 1 unread")
    boris.talk_to(anna_user.name)
    expect(anna.message("read later").locator(".state")).to_have_text("Read")
    # What the server keeps (read_at) shows after a reload.
    anna.page.reload()
    expect(anna.page.locator(".message.mine .state")).to_have_text(["Read", "Read"])


def test_read_receipts_are_off_by_default_and_then_shown_to_no_one(
    people: People, gateway: httpx.Client
) -> None:
    anna, boris, anna_user, boris_user = chatting(people, gateway)
    expect(anna.settings().get_by_label("Send and show read receipts")).not_to_be_checked()
    anna.page.keyboard.press("Escape")
    anna.write("no receipt for this")
    expect(boris.page.locator("#messages .text")).to_have_text(["no receipt for this"])
    # Boris has read it (the server counts it read), but sends no receipts.
    assert eventually(lambda: unread_counts(gateway, boris_user) == {anna_user.id: 0})
    listed = stored_messages(gateway, anna_user, boris_user)
    assert [m["read_at"] for m in listed] == [None]
    anna.page.reload()
    expect(anna.message("no receipt for this").locator(".state")).to_have_text("Stored")


def test_deleting_the_account_signs_out_and_the_partner_sees_a_deleted_account(
    people: People, gateway: httpx.Client
) -> None:
    anna, boris, anna_user, boris_user = chatting(people, gateway)
    anna.write("from anna")
    boris.write("from boris")
    expect(anna.page.locator("#messages .text")).to_have_text(["from anna", "from boris"])
    settings = anna.settings()
    password = settings.get_by_label("Your password")
    password.fill("not the password")
    settings.get_by_role("button", name="Delete account").click()
    anna.confirm("Delete account")
    expect(settings.get_by_role("alert")).to_have_text("Wrong password.")
    expect(password).to_be_focused()
    password.fill(PASSWORD)
    settings.get_by_role("button", name="Delete account").click()
    anna.confirm("Cancel")
    expect(settings).to_be_visible()
    settings.get_by_role("button", name="Delete account").click()
    anna.confirm("Delete account")
    # Back at the login screen with nothing of the account left in the page.
    expect(anna.page.get_by_role("button", name="Log in")).to_be_visible()
    expect(anna.page.get_by_role("alert")).to_have_text("Your account is deleted.")
    assert anna.page.evaluate("sessionStorage.length") == 0
    assert anna.page.locator("#messages li, #users li, #blocked li").count() == 0
    assert gateway.get(f"/users/{anna_user.id}", headers=boris_user.headers).status_code == 404
    # Boris: what Anna sent goes, his own stays, and she is a deleted account.
    expect(boris.page.locator("#peer")).to_have_text("deleted account")
    expect(boris.page.locator("#messages .text")).to_have_text(["from boris"])
    expect(boris.page.locator("#messages .message.theirs")).to_have_count(0)
    expect(boris.page.get_by_label("Message", exact=True)).to_be_disabled()
    boris.page.reload()
    expect(boris.page.locator("#peer")).to_have_text("deleted account")
    expect(boris.user_button("deleted account")).to_be_visible()
    expect(boris.page.locator("#messages .text")).to_have_text(["from boris"])


def serious(violations: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    return [
        (v["id"], v["help"], [node["html"] for node in v["nodes"]])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_accessibility_violation(
    people: People, gateway: httpx.Client, scheme: str
) -> None:
    other = new_user(gateway)
    person = people(color_scheme=scheme)
    page = person.open()
    axe = Axe()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    person.sign_in("x", password="y")
    expect(page.get_by_role("alert")).not_to_be_empty()
    signin = axe.run(page).response
    assert signin["passes"], "axe ran no check"
    assert serious(signin["violations"]) == []
    me = user_named(gateway, signed_up(person))
    send(gateway, other, me.id, "Привет 👋")
    person.talk_to(other.name)
    person.write("a reply")
    expect(page.locator(".message.mine .state")).to_have_text(["Stored"])
    chat = axe.run(page).response
    assert serious(chat["violations"]) == []
    person.settings()
    settings = axe.run(page).response
    assert serious(settings["violations"]) == []
