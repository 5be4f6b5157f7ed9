"""Connections, the per-request transaction, and the one statement that sets who is asking.

Every request runs in one transaction whose first statement switches to the least-privileged
role `app_user`, records the caller in `app.user_id`, and sets the transaction's timeouts.
All settings are transaction-local (`set_config(..., true)`), so a pooled connection, or a
transaction pooler's server connection, never carries one user's identity into the next
request. The row-level-security policies in `db/policies/` read `app.user_id`.
"""

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlsplit

import psycopg
from fastapi import Depends, Request
from psycopg import errors as pg_errors
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from api.auth import CurrentUserId
from api.config import Settings

logger = logging.getLogger("api.db")

APP_ROLE = "app_user"

# The identity statement. It lives here and nowhere else.
IDENTITY_STATEMENT = text(
    "select set_config('role', 'app_user', true),"
    " set_config('app.user_id', :user_id, true),"
    " set_config('statement_timeout', :statement_timeout, true),"
    " set_config('lock_timeout', :lock_timeout, true)"
)

# Failures where replaying the whole (single-statement) transaction is the right answer.
RETRYABLE_TRANSACTION_ERRORS = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
PSYCOPG_DEFAULT_PREPARE_THRESHOLD = 5


def prepared_statements_enabled(database_url: str, setting: str) -> bool:
    """`auto` turns them off behind a transaction pooler (Neon's `-pooler` hosts, port 6432)."""
    if setting != "auto":
        return setting == "on"
    parts = urlsplit(database_url)
    return "-pooler" not in (parts.hostname or "") and parts.port != 6432


def create_engine(database_url: str, settings: Settings) -> AsyncEngine:
    """An async engine that hands the URL to libpq untouched (postgres://, sslmode, sockets)."""
    prepare = prepared_statements_enabled(database_url, settings.database_prepared_statements)

    async def connect() -> psycopg.AsyncConnection:
        return await connect_with_backoff(
            database_url,
            budget_seconds=settings.db_connect_timeout_seconds,
            prepare_threshold=PSYCOPG_DEFAULT_PREPARE_THRESHOLD if prepare else None,
        )

    return create_async_engine(
        "postgresql+psycopg://",
        async_creator=connect,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=False,  # a dead connection is detected by its failure, not by a ping
    )


async def connect_with_backoff(
    database_url: str, *, budget_seconds: float, prepare_threshold: int | None
) -> psycopg.AsyncConnection:
    """Connect, retrying with exponential backoff and jitter until the budget is spent.

    A serverless compute waking from suspend refuses or stalls the first attempts; a server
    that stays down costs the caller at most the budget, then a 503.
    """
    deadline = time.monotonic() + budget_seconds
    delay = 0.05
    while True:
        remaining = deadline - time.monotonic()
        try:
            return await psycopg.AsyncConnection.connect(
                database_url,
                connect_timeout=max(2, round(remaining)),  # libpq's minimum is 2 s
                application_name="taskapi",
                prepare_threshold=prepare_threshold,
            )
        except psycopg.OperationalError:
            if time.monotonic() + delay >= deadline:
                raise
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 1.0)


class RequestSession(AsyncSession):
    """A session whose transaction starts with the identity statement and can be replayed.

    Services run one statement per request; when PostgreSQL aborts the transaction with a
    serialization failure or a deadlock, the prologue and the statements run so far are
    replayed in a fresh transaction, a bounded number of times.
    """

    def __init__(self, engine: AsyncEngine, *, identity: dict[str, str], attempts: int) -> None:
        super().__init__(engine, expire_on_commit=False)
        self._identity = identity
        self._attempts = attempts
        self._statements: list[tuple[Any, Any]] = []

    async def begin_as_caller(self) -> None:
        """Run the identity statement; a dead pooled connection is replaced once."""
        try:
            await super().execute(IDENTITY_STATEMENT, self._identity)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # Nothing of the request was sent yet, so trying again on a new connection is safe.
            await self.rollback()
            await super().execute(IDENTITY_STATEMENT, self._identity)

    async def execute(self, statement: Any, params: Any = None, **kwargs: Any) -> Any:
        self._statements.append((statement, params))
        for attempt in range(1, self._attempts + 1):
            try:
                if attempt == 1:
                    return await super().execute(statement, params, **kwargs)
                return await self._replay(**kwargs)
            except DBAPIError as exc:
                if not isinstance(exc.orig, RETRYABLE_TRANSACTION_ERRORS) or attempt == self._attempts:
                    raise
                logger.info("transaction aborted (%s); replaying", type(exc.orig).__name__)
                await self.rollback()
                await asyncio.sleep(random.uniform(0.005, 0.02) * attempt)
        raise AssertionError("unreachable")

    async def _replay(self, **kwargs: Any) -> Any:
        await super().execute(IDENTITY_STATEMENT, self._identity)
        result = None
        for statement, params in self._statements:
            result = await super().execute(statement, params, **kwargs)
        return result


def _engine_for(request: Request) -> AsyncEngine:
    if request.method in ("GET", "HEAD") and request.app.state.read_engine is not None:
        return request.app.state.read_engine
    return request.app.state.engine


async def get_session(request: Request, user_id: CurrentUserId) -> AsyncIterator[AsyncSession]:
    """One transaction per request: identity first, commit on success, rollback on error."""
    settings: Settings = request.app.state.settings
    identity = {
        "user_id": user_id,
        "statement_timeout": str(settings.db_statement_timeout_ms),
        "lock_timeout": str(settings.db_lock_timeout_ms),
    }
    async with RequestSession(_engine_for(request), identity=identity, attempts=settings.db_retry_attempts) as session:
        await session.begin_as_caller()
        yield session
        await session.commit()


# scope="function": the commit runs before the response is sent, so a failed commit
# becomes an error response instead of a 200 for a write that did not happen.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
