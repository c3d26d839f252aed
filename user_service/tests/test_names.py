"""Usernames in any script, compared in any letter case, look-alikes refused."""

import uuid

import pytest

from user_service import names

PASSWORD = "correct horse battery"


def tag() -> str:
    """A few letters no other test's names have, in the script of the name they end."""
    return uuid.uuid4().hex[:6]


async def register(client, username: str):
    return await client.post("/users", json={"username": username, "password": PASSWORD})


@pytest.mark.parametrize("script", ["Глеб", "李雷", "Ωμέγα", "Ναταλία", "भारत", "アリス", "Zoë"])
async def test_names_in_any_script_are_accepted_and_kept_as_written(user_service, script) -> None:
    # Digits mix with any script: they make each run's names its own.
    name = f"{script}{uuid.uuid4().int % 10**8}"
    answer = await register(user_service, name)
    assert answer.status_code == 201, answer.text
    assert answer.json()["username"] == name
    found = await user_service.get(f"/users/by-name/{name.upper()}")
    assert found.status_code == 200
    assert found.json()["id"] == answer.json()["id"]
    login = await user_service.post("/login", json={"username": name.upper(), "password": PASSWORD})
    assert login.status_code == 200


async def test_the_same_name_in_another_letter_case_is_taken(user_service) -> None:
    name = f"Глеб{uuid.uuid4().int % 10**8}"
    assert (await register(user_service, name)).status_code == 201
    again = await register(user_service, name.lower())
    assert again.status_code == 409
    assert "taken" in again.json()["detail"]


@pytest.mark.parametrize(
    "name",
    ["аlice", "pаypal", "Ωmega", "mixedСкрипт"],  # Cyrillic а, Greek with Latin, ...
)
async def test_a_name_that_mixes_scripts_is_refused_in_words(user_service, name) -> None:
    answer = await register(user_service, name)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "username"
    assert "mixes scripts" in answer.json()["detail"]


async def test_a_name_that_looks_like_a_taken_one_is_refused(user_service) -> None:
    suffix = str(uuid.uuid4().int % 10**8)
    assert (await register(user_service, f"pop{suffix}")).status_code == 201
    # All Cyrillic (р, о, р), one script: it passes the script rule, not the skeleton.
    cyrillic = await register(user_service, f"рор{suffix}")
    assert cyrillic.status_code == 409
    assert "looks too much like" in cyrillic.json()["detail"]
    assert (await register(user_service, f"alice{suffix}")).status_code == 201
    digit = await register(user_service, f"a1ice{suffix}")  # digit one for l
    assert digit.status_code == 409


@pytest.mark.parametrize("name", ["with space", "tab\tname", "emoji🙂", "sym$bol", "ab"])
async def test_what_is_no_name_is_refused(user_service, name) -> None:
    answer = await register(user_service, name)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "username"


def test_skeletons_follow_unicodes_confusables() -> None:
    assert names.skeleton("paypal") == names.skeleton("раураl")
    assert names.skeleton("alice") == names.skeleton("a1ice")
    assert names.skeleton("глеб") != names.skeleton("глоб")
