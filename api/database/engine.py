"""Connections: one pool per PostgreSQL the API talks to (the primary, and a replica if any)."""

import asyncio
import random
import time

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api.config import Settings


class Database:
    """A PostgreSQL target and its pool, opened by `start` and closed by `stop`."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_engine(self.url, self.settings)
        return self._engine

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()


def create_engine(database_url: str, settings: Settings) -> AsyncEngine:
    """An async engine that hands the URL to libpq untouched (postgres://, sslmode, sockets)."""

    async def connect() -> psycopg.AsyncConnection:
        return await connect_with_backoff(database_url, budget_seconds=settings.db_connect_timeout_seconds)

    return create_async_engine(
        "postgresql+psycopg://",
        async_creator=connect,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=False,  # a dead connection is detected by its failure, not by a ping
    )


async def connect_with_backoff(database_url: str, *, budget_seconds: float) -> psycopg.AsyncConnection:
    """Connect, retrying with exponential backoff and jitter until the budget is spent.

    A serverless compute waking from suspend refuses or stalls the first attempts; a server
    that stays down costs the caller at most the budget, then a 503.

    Statements are never prepared on the server. A transaction pooler (PgBouncer, Supavisor,
    RDS Proxy, pgcat: on whatever host and port) may run the next transaction on another
    server connection, where a statement prepared earlier does not exist, or another client's
    does under the same name. Every statement is planned anew for its user anyway
    (plan_cache_mode), so preparing would save only the parse: nothing measurable.
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
                prepare_threshold=None,
                autocommit=True,  # transactions are explicit: BEGIN ... COMMIT in one pipeline
            )
        except psycopg.OperationalError:
            if time.monotonic() + delay >= deadline:
                raise
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 1.0)
