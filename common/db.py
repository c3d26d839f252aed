"""Database helpers: engines, the per-request transaction, databases and migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from fastapi import Request
from psycopg import sql
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

# Stable constraint names, so that migrations can refer to them (alembic docs, "naming
# conventions").
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def metadata() -> MetaData:
    """A MetaData with the shared naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


async def transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request: committed when the route returns."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session


async def database_ready(engine: AsyncEngine) -> bool:
    """True when the database answers a trivial query."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


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


def upgrade(service_dir: Path, url: str, revision: str = "head") -> None:
    """Apply the service's migrations up to ``revision``."""
    command.upgrade(alembic_config(service_dir, url), revision)


def downgrade(service_dir: Path, url: str, revision: str = "base") -> None:
    """Roll the service's migrations back to ``revision``."""
    command.downgrade(alembic_config(service_dir, url), revision)
