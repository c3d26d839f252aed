"""Each service's migrations go up, down and up again on an empty database."""

import psycopg
import pytest

from stack import databases, infra
from stack.processes import ROOT
from tests.harness.servers import RUN_ID, Servers

TABLES = {"user_service": {"users"}, "message_service": {"messages", "id_blocks"}}


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
