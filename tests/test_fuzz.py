"""Schemathesis against the gateway's own OpenAPI document, with the real services behind
it: valid and invalid requests alike, no answer is a 5xx and every answer matches the
document. A bounded number of examples per operation keeps it quick."""

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api import new_user

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
EXAMPLES_PER_OPERATION = 40


def test_the_gateway_keeps_its_documented_contract(running_stack) -> None:
    with httpx.Client(base_url=running_stack.gateway_url) as client:
        fuzzer = new_user(client, "fuzzer")
    schema = schemathesis.openapi.from_url(f"{running_stack.gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 9

    for operation in operations:
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def holds(case) -> None:
            case.call_and_validate(headers=fuzzer.headers, checks=CHECKS)

        holds()
