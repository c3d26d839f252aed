"""Where a client keeps its session: in memory, or in the user's credentials file that
every ``anonchat`` process of the user shares.

A refresh token is single use and the server ends the whole session when a spent one
comes back, so two processes of one user must never refresh with the same token. The
client therefore refreshes under the store's lock, and first reads the store again:
when another process refreshed meanwhile, it takes that session instead."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from anonchat_client._models import Session

try:
    import fcntl
except ImportError:  # pragma: no cover (not POSIX: one process at a time)
    fcntl = None  # type: ignore[assignment]


class SessionStore(Protocol):
    """Keeps one session. ``lock`` is held while the client refreshes it. Its methods
    are plain calls, in ``AsyncClient`` too: they should be quick (a small file)."""

    def load(self) -> Session | None: ...

    def save(self, session: Session | None) -> None: ...

    def lock(self) -> AbstractContextManager[object]: ...


class MemoryStore:
    """The session in this process only (the default)."""

    def __init__(self, session: Session | None = None) -> None:
        self._session = session

    def load(self) -> Session | None:
        return self._session

    def save(self, session: Session | None) -> None:
        self._session = session

    def lock(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()


def config_folder() -> Path:
    """``$XDG_CONFIG_HOME/anonchat``, by default ``~/.config/anonchat``."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "anonchat"


class CredentialsFile:
    """The session for one server URL in ``credentials.json`` (one entry per server),
    readable by its owner only (0600, in a 0700 folder). Written whole to a temporary
    file and renamed, so that a reader never sees half of it."""

    def __init__(self, server: str, path: Path | None = None) -> None:
        self.server = server.rstrip("/")
        self.path = path or config_folder() / "credentials.json"
        self._threads = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # An unreadable file holds no usable session: logging in again rewrites it.
            return {}
        return data if isinstance(data, dict) else {}

    def load(self) -> Session | None:
        entry = self._read().get("servers", {}).get(self.server)
        if not isinstance(entry, dict):
            return None
        try:
            return Session.from_json(entry)
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, session: Session | None) -> None:
        data = self._read()
        servers = data.setdefault("servers", {})
        if session is None:
            servers.pop(self.server, None)
        else:
            servers[self.server] = session.to_json()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".credentials.")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @contextlib.contextmanager
    def lock(self) -> Iterator[object]:
        """Held by one thread of one process at a time (a lock file beside the file)."""
        with self._threads:
            if fcntl is None:  # pragma: no cover
                yield None
                return
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock_path = self.path.with_name(self.path.name + ".lock")
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                yield None
            finally:
                os.close(descriptor)
