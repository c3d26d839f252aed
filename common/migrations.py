"""The body of every service's Alembic ``env.py``: online and offline runs against the
URL the caller passed in ``config.attributes`` or, by default, the service's settings."""

from __future__ import annotations

from collections.abc import Callable
from logging.config import fileConfig

from alembic import context
from sqlalchemy import MetaData, create_engine, pool


def run(*, target_metadata: MetaData, default_url: Callable[[], str]) -> None:
    """Run the migrations Alembic asked for."""
    config = context.config
    if config.config_file_name is not None and not config.attributes.get("database_url"):
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    url = config.attributes.get("database_url") or default_url()
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
