"""Connections, the per-request transaction, and the one statement that sets who is asking.

Every request runs in one transaction whose first statement switches to the least-privileged
role `app_user` and records the caller in `app.user_id`. Both settings are transaction-local
(`set_config(..., true)`), so a pooled connection never carries one user's identity into the
next request. The row-level-security policies in `db/policies/` read `app.user_id`.
"""

from collections.abc import AsyncIterator
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from api.auth import CurrentUserId
from api.config import Settings

APP_ROLE = "app_user"

# The identity statement. It lives here and nowhere else.
IDENTITY_STATEMENT = text(
    "select set_config('role', 'app_user', true), set_config('app.user_id', :user_id, true)"
)


def create_engine(database_url: str, settings: Settings) -> AsyncEngine:
    """An async engine that hands the URL to libpq untouched (postgres://, sslmode, sockets)."""

    async def connect() -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(
            database_url,
            connect_timeout=settings.db_connect_timeout_seconds,
            application_name="taskapi",
        )

    return create_async_engine(
        "postgresql+psycopg://",
        async_creator=connect,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=False,  # a dead connection is detected by its failure, not by a ping
    )


async def get_session(request: Request, user_id: CurrentUserId) -> AsyncIterator[AsyncSession]:
    """One transaction per request: identity first, commit on success, rollback on error."""
    engine: AsyncEngine = request.app.state.engine
    async with AsyncSession(engine, expire_on_commit=False) as session:
        await session.execute(IDENTITY_STATEMENT, {"user_id": user_id})
        yield session
        await session.commit()


# scope="function": the commit runs before the response is sent, so a failed commit
# becomes an error response instead of a 200 for a write that did not happen.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
