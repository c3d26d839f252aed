"""Alembic environment of the messages database."""

from common.migrations import run
from message_service.config import get_settings
from message_service.models import Base

run(target_metadata=Base.metadata, default_url=lambda: get_settings().database_url)
