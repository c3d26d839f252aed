"""Access tokens: what user_service signs is what the gateway verifies."""

import time

import jwt
import pytest

from common.tokens import ALGORITHMS, InvalidToken, issue_token, verify_token

SECRET = "a-test-secret-of-at-least-thirty-two-characters"


def test_a_token_names_its_user_until_it_expires() -> None:
    before = time.time()
    token = issue_token(secret=SECRET, user_id=42, ttl_seconds=60)
    user_id, expires, session = verify_token(secret=SECRET, token=token)
    assert session is None
    assert user_id == 42
    assert before + 59 <= expires <= time.time() + 60


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "42", "iss": "anonchat", "iat": 1, "exp": 2},  # expired
        {"sub": "42", "iss": "someone else", "iat": 1, "exp": 2**40},
        {"sub": "not a user", "iss": "anonchat", "iat": 1, "exp": 2**40},
        {"sub": "42", "iss": "anonchat", "iat": 1},  # no expiry
    ],
)
def test_a_token_outside_the_contract_is_refused(claims: dict[str, object]) -> None:
    token = jwt.encode(claims, SECRET, algorithm=ALGORITHMS[0])
    with pytest.raises(InvalidToken):
        verify_token(secret=SECRET, token=token)


def test_an_unsigned_token_is_refused() -> None:
    token = jwt.encode({"sub": "1", "iss": "anonchat", "iat": 1, "exp": 2**40}, None, "none")
    with pytest.raises(InvalidToken):
        verify_token(secret=SECRET, token=token)
