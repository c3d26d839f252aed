"""The effects an operation of ``anonchat_client._core`` waits on, and :class:`Run`,
which steps an operation from one effect to the next. The clients carry effects out."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from anonchat_client._models import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """Send ``request``; the answer is read whole, unless ``stream`` (then only its
    head, and the events are read with :class:`NextEvent`)."""

    request: httpx.Request
    stream: bool = False


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Renew:
    """Refresh the session ``stale`` (run :meth:`Core.renew` with the client's lock held,
    so that one refresh at a time spends the refresh token)."""

    stale: Session


@dataclass(frozen=True)
class NextEvent:
    """The next event of the open stream; ``None`` where the stream ended."""


@dataclass(frozen=True)
class CloseStream:
    """Close the open stream."""


@dataclass(frozen=True)
class Emit:
    """Hand ``item`` to the caller of an iterator."""

    item: Any


Effect = Call | Pause | Renew | NextEvent | CloseStream | Emit
Op = Generator[Effect, Any, T]


class Run:
    """Steps an operation: ``effect`` is what it waits on, ``None`` once it returned
    ``value``."""

    def __init__(self, op: Op[Any]) -> None:
        self._op = op
        self.effect: Effect | None = None
        self.value: Any = None
        self._step(lambda: next(op))

    def resume(self, result: object = None, error: BaseException | None = None) -> None:
        """Give the operation what came of its effect (or throw in how it failed)."""
        if error is not None:
            self._step(lambda: self._op.throw(error))
        else:
            self._step(lambda: self._op.send(result))

    def close(self) -> None:
        self._op.close()

    def _step(self, step: Callable[[], Effect]) -> None:
        try:
            self.effect = step()
        except StopIteration as stop:
            self.effect, self.value = None, stop.value
