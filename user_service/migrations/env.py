"""Alembic environment of the users database."""

from common.migrations import run
from user_service.config import get_settings
from user_service.models import Base

run(target_metadata=Base.metadata, default_url=lambda: get_settings().database_url)
