"""The gateway's memory of verified tokens."""

import time

import pytest

from common.tokens import InvalidToken, issue_token
from gateway.tokens import VerifiedTokens

SECRET = "a-test-secret-of-at-least-thirty-two-characters"


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch) -> None:
    tokens = VerifiedTokens(secret=SECRET, capacity=10)
    token = issue_token(secret=SECRET, user_id=42, ttl_seconds=60)
    assert tokens.verify(token).user_id == 42
    assert tokens.verify(token).user_id == 42
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidToken):
        tokens.verify(token)


@pytest.mark.parametrize(
    "token",
    [
        issue_token(
            secret="another-secret-of-at-least-thirty-two-chars", user_id=1, ttl_seconds=60
        ),
        issue_token(secret=SECRET, user_id=1, ttl_seconds=60)[:-2] + "xx",
        "not a token",
    ],
)
def test_a_bad_token_is_refused_every_time(token: str) -> None:
    tokens = VerifiedTokens(secret=SECRET, capacity=10)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            tokens.verify(token)


def test_the_oldest_token_is_forgotten_beyond_capacity() -> None:
    tokens = VerifiedTokens(secret=SECRET, capacity=2)
    issued = [issue_token(secret=SECRET, user_id=n, ttl_seconds=60) for n in (1, 2, 3)]
    assert [tokens.verify(t).user_id for t in issued] == [1, 2, 3]
    assert len(tokens._valid) == 2
    assert issued[0] not in tokens._valid
