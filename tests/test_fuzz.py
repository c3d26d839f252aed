"""Schemathesis against the gateway's own OpenAPI document, with the real services behind
it, as ``schemathesis run --checks all`` runs it: every phase (the document's examples,
the coverage of each parameter's edges, random valid and invalid data, sequences of
calls), every check (no 5xx, answers as documented, valid data accepted and invalid data
refused, auth enforced, undeclared methods refused, deleted resources gone). A bounded
number of examples per operation and a fixed seed keep it quick and repeatable."""

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.api import PASSWORD, new_user

EXAMPLES_PER_OPERATION = 5
SEED = 19
ROOT = Path(__file__).resolve().parent.parent


def test_the_gateway_keeps_its_documented_contract(running_stack, tmp_path) -> None:
    with httpx.Client(base_url=running_stack.gateway_url) as client:
        fuzzer = new_user(client, "fuzzer")
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        f"--config-file={ROOT / 'tests' / 'fuzz.toml'}",
        "run",
        f"{running_stack.gateway_url}/openapi.json",
        "--checks=all",
        "--mode=all",
        "--phases=examples,coverage,fuzzing,stateful",
        f"--max-examples={EXAMPLES_PER_OPERATION}",
        f"--seed={SEED}",
        # One thread: Hypothesis parses source with ast.parse, and in CPython 3.11.7 two
        # threads parsing at once can fail with "AST constructor recursion depth mismatch"
        # (python/cpython#106905). Two workers took as long here.
        "--workers=1",
        "--suppress-health-check=all",
        "--generation-database=none",
    ]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
            "PYTHONPATH": str(ROOT),
            "FUZZ_GATEWAY": running_stack.gateway_url,
            "FUZZ_USERNAME": fuzzer.name,
            "FUZZ_PASSWORD": PASSWORD,
        },
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
