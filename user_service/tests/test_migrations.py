"""The users database's migrations go up, down and up again on an empty database."""

import psycopg
import pytest

from common import db
from stack import infra
from stack.processes import ROOT
from tests.fixtures import RUN_ID, Servers


def _tables(url: str) -> set[str]:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def empty_database(servers: Servers):
    url = infra.with_database(servers.postgres_url, f"anonchat_test_{RUN_ID}_users_roundtrip")
    db.create_database(url)
    yield url
    db.drop_database(url)


def test_upgrade_downgrade_upgrade_round_trip(empty_database: str) -> None:
    service_dir = ROOT / "user_service"
    db.upgrade(service_dir, empty_database)
    assert {"users", "alembic_version"} <= _tables(empty_database)
    db.downgrade(service_dir, empty_database)
    assert _tables(empty_database) == {"alembic_version"}
    db.upgrade(service_dir, empty_database)
    assert "users" in _tables(empty_database)
