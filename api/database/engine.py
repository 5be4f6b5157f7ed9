"""Connections: one pool per PostgreSQL the API talks to (the primary, and a replica if any)."""

import asyncio
import random
import time
from typing import Any

import psycopg
from psycopg.types.string import TextLoader

from api.config import Settings
from api.database.pool import Connection, Pool
from api.edge.metrics import POOL_CONNECTIONS_IN_USE, POOL_REQUESTS_WAITING


class Database:
    """A PostgreSQL target and its pool of connections; `stop` closes them."""

    def __init__(self, url: str, settings: Settings, *, name: str = "primary") -> None:
        self.url = url
        self.name = name  # as the metrics label it: primary, replica
        in_use, waiting = POOL_CONNECTIONS_IN_USE.labels(name), POOL_REQUESTS_WAITING.labels(name)
        reported = [0, 0]

        def report(pool: Pool) -> None:
            if pool.in_use != reported[0]:
                reported[0] = pool.in_use
                in_use.set(reported[0])
            if pool.waiting != reported[1]:
                reported[1] = pool.waiting
                waiting.set(reported[1])

        self.pool = Pool(
            self.connect,
            size=settings.db_pool_size,
            max_size=settings.db_pool_size + settings.db_max_overflow,
            timeout_seconds=settings.db_pool_timeout_seconds,
            on_change=report,
        )
        self._connect_budget_seconds = settings.db_connect_timeout_seconds

    async def connect(self) -> Connection:
        return await connect_with_backoff(self.url, budget_seconds=self._connect_budget_seconds)

    async def stop(self) -> None:
        await self.pool.close()


async def connect_with_backoff(database_url: str, *, budget_seconds: float) -> psycopg.AsyncConnection[Any]:
    """Connect, retrying with exponential backoff and jitter until the budget is spent.

    A serverless compute waking from suspend refuses or stalls the first attempts; a server
    that stays down costs the caller at most the budget, then a 503.

    Statements are never prepared on the server: every request is sent as one simple-query
    message, its values bound on the client. A transaction pooler (PgBouncer, Supavisor, RDS
    Proxy, pgcat: on whatever host and port) may run the next transaction on another server
    connection, where a statement prepared earlier would not exist.

    A `timestamptz` is read as PostgreSQL's text, never as a `datetime` (api/database/timestamps.py).
    """
    deadline = time.monotonic() + budget_seconds
    delay = 0.05
    while True:
        remaining = deadline - time.monotonic()
        try:
            connection = await psycopg.AsyncConnection.connect(
                database_url,
                connect_timeout=max(2, round(remaining)),  # libpq's minimum is 2 s
                application_name="taskapi",
                prepare_threshold=None,
                autocommit=True,  # each request's message is its own (implicit) transaction
            )
            connection.adapters.register_loader("timestamptz", TextLoader)  # rendered by api/database/timestamps.py
            return connection
        except psycopg.OperationalError:
            if time.monotonic() + delay >= deadline:
                raise
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 1.0)
