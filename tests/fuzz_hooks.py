"""Schemathesis hooks for ``tests/test_fuzz.py``, loaded through ``SCHEMATHESIS_HOOKS``.

- Every operation that needs a token gets the fuzzer's, logged in afresh whenever one is
  refused (the fuzzer's own ``/logout`` ends its session).
- Valid usernames for the document's ``precis-username`` format, which no JSON Schema
  keyword can say (letters of one script, digits, '_', '.', '-'): names in Latin,
  Cyrillic and Greek letters.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis
from hypothesis import strategies as st

from common.schemas import USERNAME_FORMAT, USERNAME_MAX, USERNAME_MIN

_LENGTHS = f"{{{USERNAME_MIN},{USERNAME_MAX}}}"
schemathesis.openapi.format(
    USERNAME_FORMAT,
    st.one_of(
        st.from_regex(f"[a-zA-Z0-9_.-]{_LENGTHS}", fullmatch=True),
        st.from_regex(f"[а-яА-Я0-9_.-]{_LENGTHS}", fullmatch=True),
        # U+03A2, between Ρ and Σ, is no letter.
        st.from_regex(f"[α-ωΑ-ΡΣ-Ω0-9_.-]{_LENGTHS}", fullmatch=True),
    ),
)


@schemathesis.auth()
class FuzzerLogin:
    """A session of the user named by FUZZ_USERNAME and FUZZ_PASSWORD, at FUZZ_GATEWAY."""

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> str:
        response = httpx.post(
            f"{os.environ['FUZZ_GATEWAY']}/login",
            json={"username": os.environ["FUZZ_USERNAME"], "password": os.environ["FUZZ_PASSWORD"]},
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def set(
        self, case: schemathesis.Case[Any], data: str, context: schemathesis.AuthContext
    ) -> None:
        case.headers["Authorization"] = f"Bearer {data}"
