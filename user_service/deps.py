"""Dependencies of user_service's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from passlib.context import CryptContext
from sqlalchemy.ext.asyncio import AsyncSession

from common.deps import from_state, transaction
from user_service.config import Settings

SessionDep = Annotated[AsyncSession, Depends(transaction, scope="function")]
SettingsDep = Annotated[Settings, Depends(from_state("settings", Settings))]
HasherDep = Annotated[CryptContext, Depends(from_state("hasher", CryptContext))]
