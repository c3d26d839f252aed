"""Dependencies of user_service's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from passlib.context import CryptContext
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import transaction
from user_service.config import Settings


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _hasher(request: Request) -> CryptContext:
    hasher: CryptContext = request.app.state.hasher
    return hasher


SessionDep = Annotated[AsyncSession, Depends(transaction, scope="function")]
SettingsDep = Annotated[Settings, Depends(_settings)]
HasherDep = Annotated[CryptContext, Depends(_hasher)]
