"""Fixtures every test directory shares live in tests/harness/."""

pytest_plugins = ["tests.harness.servers", "tests.harness.apps", "tests.harness.stack"]
