"""Fixtures of the fault tests."""

from collections.abc import Callable

import pytest

from tests.faults.stack import fault_stack  # noqa: F401 (a fixture)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Write a line to the terminal, past pytest's output capture: the fault tests' figures
    belong in every run's output."""
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if terminal is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line(line)

    return write
