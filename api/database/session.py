"""Connections, the per-request transaction, and the one statement that sets who is asking.

Every request runs in one transaction whose first statement switches to the least-privileged
role `app_user`, records the caller in `app.user_id`, and sets the transaction's timeouts;
the whole transaction travels to PostgreSQL in one round trip (psycopg pipeline mode).
All settings are transaction-local (`set_config(..., true)`), so a pooled connection, or a
transaction pooler's server connection, never carries one user's identity into the next
request. The row-level-security policies in `db/policies/` read `app.user_id`.
"""

import asyncio
import logging
import random
import time
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import Compiled

from api.config import Settings
from api.database.shares import DatabaseShares, ShareExceeded
from api.edge.errors import TooManyRequests
from api.identity.tokens import CurrentUserId

logger = logging.getLogger("api.database.session")

APP_ROLE = "app_user"

# The identity statement. It lives here and nowhere else.
IDENTITY_SQL = (
    "select set_config('role', 'app_user', true),"
    " set_config('app.user_id', %(user_id)s, true),"
    " set_config('statement_timeout', %(statement_timeout)s, true),"
    " set_config('lock_timeout', %(lock_timeout)s, true),"
    # Plan each statement for its own user: a generic plan assumes an average user's row count.
    " set_config('plan_cache_mode', 'force_custom_plan', true)"
)

# Failures where replaying the whole (single-statement) transaction is the right answer.
RETRYABLE_TRANSACTION_ERRORS = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)


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
    (plan_cache_mode below), so preparing would save only the parse: nothing measurable.
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


class RequestTransaction:
    """One request's transaction, sent to PostgreSQL in a single round trip.

    Services run exactly one statement per request. `run()` sends, in one psycopg pipeline
    flight: BEGIN, the identity statement, the statement, COMMIT. If the statement fails,
    PostgreSQL skips the COMMIT and the transaction is rolled back. Serialization failures
    and deadlocks are replayed whole, a bounded number of times; a read that finds its pooled
    connection dead is retried once on a fresh one; a write is never retried blindly.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        identity: dict[str, str],
        attempts: int,
        read_only: bool,
        shares: DatabaseShares | None = None,
    ) -> None:
        self.engine = engine
        self.identity = identity
        self.attempts = attempts
        self.read_only = read_only
        self.shares = shares

    @property
    def user_id(self) -> str:
        return self.identity["user_id"]

    async def run(self, statement: Executable, *, statement_timeout_ms: int | None = None) -> list[dict[str, Any]]:
        """Run the request's statement in its own transaction; return its rows."""
        [rows] = await self.run_all([statement], statement_timeout_ms=statement_timeout_ms)
        return rows

    async def run_all(
        self, statements: list[Executable], *, statement_timeout_ms: int | None = None
    ) -> list[list[dict[str, Any]]]:
        """Run statements in order in one transaction (still one round trip); the rows of each.

        Each statement sees what the ones before it did, and what other transactions
        committed meanwhile (READ COMMITTED takes a snapshot per statement). A
        `statement_timeout_ms` tightens the transaction's usual timeout (never loosens it).
        """
        compiled = [compile_cached(statement, self.engine.dialect) for statement in statements]
        identity = self.identity
        if statement_timeout_ms is not None:
            tightened = _tighter(identity["statement_timeout"], statement_timeout_ms)
            identity = {**identity, "statement_timeout": str(tightened)}
        if self.shares is None:
            return await self._run_with_retries(compiled, identity)
        try:
            async with self.shares.hold(self.user_id):
                return await self._run_with_retries(compiled, identity)
        except ShareExceeded:
            detail = f"more than {self.shares.per_user} of your requests are waiting for the database; retry shortly"
            raise TooManyRequests(detail, headers={"Retry-After": "1"}) from None

    async def _run_with_retries(
        self, compiled: list[tuple[str, dict[str, Any]]], identity: dict[str, str]
    ) -> list[list[dict[str, Any]]]:
        replays, reconnected = 0, False
        while True:
            try:
                return await self._run_once(compiled, identity)
            except DeadConnection as exc:
                if not self.read_only or reconnected:
                    raise exc.__cause__ from None
                reconnected = True  # nothing is lost by reading again on a fresh connection
            except RETRYABLE_TRANSACTION_ERRORS as exc:
                replays += 1
                if replays >= self.attempts:
                    raise
                logger.info("transaction aborted (%s); replaying", type(exc).__name__)
                await asyncio.sleep(random.uniform(0.005, 0.02) * replays)

    async def _run_once(
        self, compiled: list[tuple[str, dict[str, Any]]], identity: dict[str, str]
    ) -> list[list[dict[str, Any]]]:
        async with self.engine.connect() as connection:
            driver: psycopg.AsyncConnection = (await connection.get_raw_connection()).driver_connection
            cursors = [driver.cursor(row_factory=dict_row) for _ in compiled]
            try:
                async with driver.pipeline():
                    await driver.execute("begin")
                    await driver.execute(IDENTITY_SQL, identity)
                    for cursor, (sql, params) in zip(cursors, compiled, strict=True):
                        await cursor.execute(sql, params)
                    await driver.execute("commit")
            except psycopg.Error as exc:
                if driver.broken or driver.closed:
                    await connection.invalidate()
                    # A dead connection usually means a restarted server: every pooled one is dead.
                    await self.engine.dispose(close=False)
                    raise DeadConnection() from exc
                if driver.info.transaction_status != TransactionStatus.IDLE:
                    await driver.rollback()
                raise
            return [await cursor.fetchall() if cursor.description else [] for cursor in cursors]


def _tighter(timeout_ms: str, limit_ms: int) -> int:
    """The smaller of two statement timeouts, where 0 means none."""
    return min((value for value in (int(timeout_ms), limit_ms) if value > 0), default=0)


class DeadConnection(psycopg.OperationalError):
    """The pooled connection was found dead; the cause is the driver's own error."""


_COMPILED: dict[Any, Compiled] = {}
_MAX_COMPILED = 512  # statements come in a few dozen shapes; this only bounds a surprise


def compile_cached(statement: Executable, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """SQL text and parameters, compiling each statement shape once (as SQLAlchemy's own
    execution path does): only the parameter values differ from one request to the next."""
    cache_key = statement._generate_cache_key()  # type: ignore[attr-defined]
    if cache_key is None:  # a construct SQLAlchemy cannot cache
        compiled = statement.compile(dialect=dialect)
        return compiled.string, compiled.params
    compiled = _COMPILED.get(cache_key.key)
    if compiled is None:
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.clear()
        compiled = _COMPILED[cache_key.key] = statement.compile(dialect=dialect, cache_key=cache_key)
    return compiled.string, compiled.construct_params(extracted_parameters=cache_key.bindparams)


def _engine_for(request: Request) -> AsyncEngine:
    if request.method in ("GET", "HEAD") and request.app.state.read_engine is not None:
        return request.app.state.read_engine
    return request.app.state.engine


async def get_transaction(request: Request, user_id: CurrentUserId) -> RequestTransaction:
    """The caller's transaction: identity, timeouts and retry policy, ready to run.

    `async` so that FastAPI calls it on the event loop, not through its thread pool."""
    settings: Settings = request.app.state.settings
    identity = {
        "user_id": user_id,
        "statement_timeout": str(settings.db_statement_timeout_ms),
        "lock_timeout": str(settings.db_lock_timeout_ms),
    }
    return RequestTransaction(
        _engine_for(request),
        identity=identity,
        attempts=settings.db_retry_attempts,
        read_only=request.method in ("GET", "HEAD"),
        shares=request.app.state.database_shares,
    )


Transaction = Annotated[RequestTransaction, Depends(get_transaction)]
