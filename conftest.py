"""Fixtures every test directory shares live in tests/fixtures.py."""

pytest_plugins = ["tests.fixtures"]
