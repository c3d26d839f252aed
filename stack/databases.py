"""Creating, dropping and migrating the services' databases (the run command, the
benchmark and the tests use these; the services themselves do not)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy.engine import make_url

from stack.infra import with_database
from stack.processes import ROOT


def _admin_conninfo(url: str) -> tuple[str, str]:
    """The libpq conninfo of the server's maintenance database, and the database name."""
    parsed = make_url(url)
    if not parsed.database:
        raise ValueError(f"database URL names no database: {parsed!r}")
    admin = parsed.set(drivername="postgresql", database="postgres")
    return admin.render_as_string(hide_password=False), parsed.database


def create_database(url: str, *, exist_ok: bool = False) -> None:
    """Create the database that ``url`` names."""
    conninfo, name = _admin_conninfo(url)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        found = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if found and exist_ok:
            return
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(url: str) -> None:
    """Drop the database that ``url`` names, closing its connections first."""
    conninfo, name = _admin_conninfo(url)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def alembic_config(service_dir: Path, url: str | None = None) -> Config:
    """The Alembic config of the service in ``service_dir``, optionally for another database."""
    config = Config(str(service_dir / "alembic.ini"))
    config.set_main_option("script_location", str(service_dir / "migrations"))
    if url is not None:
        config.attributes["database_url"] = url
    return config


# Each database owner, and the name its database gets after a prefix.
OWNERS = {"user_service": "users", "message_service": "messages"}


def create_and_migrate(server_url: str, prefix: str, *, exist_ok: bool = False) -> dict[str, str]:
    """Create ``<prefix>_users`` and ``<prefix>_messages`` on the server at ``server_url``
    and migrate each to head; their URLs, by owning service."""
    urls = {}
    for service, name in OWNERS.items():
        urls[service] = with_database(server_url, f"{prefix}_{name}")
        create_database(urls[service], exist_ok=exist_ok)
        upgrade(ROOT / service, urls[service])
    return urls


def upgrade(service_dir: Path, url: str, revision: str = "head") -> None:
    """Apply the service's migrations up to ``revision``."""
    command.upgrade(alembic_config(service_dir, url), revision)


def downgrade(service_dir: Path, url: str, revision: str = "base") -> None:
    """Roll the service's migrations back to ``revision``."""
    command.downgrade(alembic_config(service_dir, url), revision)
