"""Each service's migrations go up, down and up again on an empty database, and build
exactly the schema its models describe."""

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from message_service.models import Base as MessagesBase
from stack import databases, infra
from stack.processes import ROOT
from tests.harness.servers import RUN_ID, Servers
from user_service.models import Base as UsersBase

TABLES = {
    "user_service": {"users", "sessions", "refresh_tokens", "reserved_names", "erasures"},
    "message_service": {
        "messages",
        "id_blocks",
        "events",
        "blocks",
        "preferences",
        "read_marks",
    },
}
MODELS = {"user_service": UsersBase.metadata, "message_service": MessagesBase.metadata}


def _tables(url: str) -> set[str]:
    with psycopg.connect(infra.libpq(url)) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize("service", sorted(TABLES))
def test_upgrade_downgrade_upgrade_round_trip(servers: Servers, service: str) -> None:
    url = infra.with_database(servers.postgres_url, f"anonchat_test_{RUN_ID}_{service}_roundtrip")
    databases.create_database(url)
    try:
        databases.upgrade(ROOT / service, url)
        assert TABLES[service] | {"alembic_version"} <= _tables(url)
        databases.downgrade(ROOT / service, url)
        assert _tables(url) == {"alembic_version"}
        databases.upgrade(ROOT / service, url)
        assert TABLES[service] <= _tables(url)
    finally:
        databases.drop_database(url)


@pytest.mark.parametrize("service", sorted(MODELS))
def test_the_migrations_build_what_the_models_describe(servers: Servers, service: str) -> None:
    url = infra.with_database(servers.postgres_url, f"anonchat_test_{RUN_ID}_{service}_models")
    databases.create_database(url)
    engine = sa.create_engine(url)
    try:
        databases.upgrade(ROOT / service, url)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), MODELS[service])
        assert differences == []
    finally:
        engine.dispose()
        databases.drop_database(url)
