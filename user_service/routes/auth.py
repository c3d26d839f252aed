"""Logging in, renewing a session, ending it, and changing the password (called by the
gateway)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from common.errors import error_response, error_responses
from common.schemas import AccessToken, Credentials, PasswordChange, Refresh
from user_service import service, sessions
from user_service.deps import CallerDep, CallerSessionDep, ServiceDep, TransactionDep

router = APIRouter(tags=["sessions"])


@router.post("/login", response_model=AccessToken, responses=error_responses(401, 422))
async def login(data: Credentials, db: TransactionDep, state: ServiceDep) -> AccessToken:
    """Exchange a name and a password for a new session's tokens."""
    user = await service.authenticate(session=db, hasher=state.hasher, data=data)
    return await sessions.start(db=db, sessions=state.sessions, user_id=user.id)


@router.post(
    "/sessions/refresh", response_model=AccessToken, responses=error_responses(401, 422, 503)
)
async def refresh(data: Refresh, db: TransactionDep, state: ServiceDep) -> Response:
    """New tokens for the session a refresh token renews (the token is spent)."""
    renewed = await sessions.refresh(db=db, sessions=state.sessions, token=data.refresh_token)
    if renewed is None:
        # Answered, not raised: the transaction commits (a reused token's session ends).
        return error_response(401, sessions.SESSION_ENDED, code="session_ended")
    return JSONResponse(renewed.model_dump())


@router.post(
    "/sessions/end", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 503)
)
async def end(
    caller: CallerDep, session: CallerSessionDep, db: TransactionDep, state: ServiceDep
) -> None:
    """End the caller's session (logout)."""
    if session in await sessions.of_user(db, caller):
        await sessions.end(db=db, sessions=state.sessions, session_ids=[session])


@router.post(
    "/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 422, 503),
)
async def change_password(
    data: PasswordChange,
    caller: CallerDep,
    session: CallerSessionDep,
    db: TransactionDep,
    state: ServiceDep,
) -> None:
    """Change the caller's password, ending every other session of theirs."""
    await service.change_password(
        session=db,
        hasher=state.hasher,
        user_id=caller,
        data=data,
        password_min_length=state.settings.password_min_length,
    )
    others = [s for s in await sessions.of_user(db, caller) if s != session]
    await sessions.end(db=db, sessions=state.sessions, session_ids=others)
