"""The per-request transaction, and the one statement that sets who is asking.

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
from collections.abc import Sequence
from typing import Any, cast

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import Compiled

from api.database.errors import DeadConnection, is_replayable
from api.database.shares import DatabaseShares, ShareExceeded
from api.edge.errors import TooManyRequests

logger = logging.getLogger("api.database")

APP_ROLE = "app_user"

# The identity statement. It lives here and nowhere else.
IDENTITY_SQL = (
    f"select set_config('role', '{APP_ROLE}', true),"
    " set_config('app.user_id', %(user_id)s, true),"
    " set_config('statement_timeout', %(statement_timeout)s, true),"
    " set_config('lock_timeout', %(lock_timeout)s, true),"
    # Plan each statement for its own user: a generic plan assumes an average user's row count.
    " set_config('plan_cache_mode', 'force_custom_plan', true)"
)

Rows = list[dict[str, Any]]


def identity(user_id: str, *, statement_timeout_ms: int, lock_timeout_ms: int) -> dict[str, str]:
    """The identity statement's parameters; an empty `user_id` is nobody (no row is visible)."""
    return {
        "user_id": user_id,
        "statement_timeout": str(statement_timeout_ms),
        "lock_timeout": str(lock_timeout_ms),
    }


class RequestTransaction:
    """One request's transaction, sent to PostgreSQL in a single round trip.

    `run()` sends, in one psycopg pipeline flight: BEGIN, the identity statement, the
    statement, COMMIT. If the statement fails, PostgreSQL skips the COMMIT and the transaction
    is rolled back. Serialization failures and deadlocks are replayed whole, a bounded number
    of times; a read that finds its pooled connection dead is retried once on a fresh one; a
    write is never retried blindly. At most the user's share of transactions run at once.
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

    async def run(self, statement: ClauseElement, *, statement_timeout_ms: int | None = None) -> Rows:
        """Run the request's statement in its own transaction; return its rows."""
        [rows] = await self.run_all([statement], statement_timeout_ms=statement_timeout_ms)
        return rows

    async def run_all(
        self, statements: Sequence[ClauseElement], *, statement_timeout_ms: int | None = None
    ) -> list[Rows]:
        """Run statements in order in one transaction (still one round trip); the rows of each.

        Each statement sees what the ones before it did, and what other transactions
        committed meanwhile (READ COMMITTED takes a snapshot per statement). A
        `statement_timeout_ms` tightens the transaction's usual timeout (never loosens it).
        """
        compiled = [compile_cached(statement, self.engine.dialect) for statement in statements]
        settings = self.identity
        if statement_timeout_ms is not None:
            tightened = _tighter(settings["statement_timeout"], statement_timeout_ms)
            settings = {**settings, "statement_timeout": str(tightened)}
        if self.shares is None:
            return await self._run_with_retries(compiled, settings)
        try:
            async with self.shares.hold(self.user_id):
                return await self._run_with_retries(compiled, settings)
        except ShareExceeded:
            detail = f"more than {self.shares.per_user} of your requests are waiting for the database; retry shortly"
            raise TooManyRequests(detail, headers={"Retry-After": "1"}) from None

    async def _run_with_retries(
        self, compiled: list[tuple[str, dict[str, Any]]], settings: dict[str, str]
    ) -> list[Rows]:
        replays, reconnected = 0, False
        while True:
            try:
                return await self._run_once(compiled, settings)
            except DeadConnection:
                if not self.read_only or reconnected:
                    raise
                reconnected = True  # nothing is lost by reading again on a fresh connection
            except psycopg.Error as exc:
                replays += 1
                if not is_replayable(exc) or replays >= self.attempts:
                    raise
                logger.info("transaction aborted (%s); replaying", type(exc).__name__)
                await asyncio.sleep(random.uniform(0.005, 0.02) * replays)

    async def _run_once(self, compiled: list[tuple[str, dict[str, Any]]], settings: dict[str, str]) -> list[Rows]:
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = cast(psycopg.AsyncConnection[Any], raw.driver_connection)
            cursors = [driver.cursor(row_factory=dict_row) for _ in compiled]
            try:
                async with driver.pipeline():
                    await driver.execute("begin")
                    await driver.execute(IDENTITY_SQL, settings)
                    for cursor, (sql, params) in zip(cursors, compiled, strict=True):
                        await cursor.execute(sql, params)
                    await driver.execute("commit")
            except psycopg.Error as exc:
                if driver.broken or driver.closed:
                    await connection.invalidate()
                    # A dead connection usually means a restarted server: every pooled one is dead.
                    await self.engine.dispose(close=False)
                    raise DeadConnection(str(exc)) from exc
                if driver.info.transaction_status != TransactionStatus.IDLE:
                    await driver.rollback()
                raise
            return [await cursor.fetchall() if cursor.description else [] for cursor in cursors]


def _tighter(timeout_ms: str, limit_ms: int) -> int:
    """The smaller of two statement timeouts, where 0 means none."""
    return min((value for value in (int(timeout_ms), limit_ms) if value > 0), default=0)


_COMPILED: dict[Any, Compiled] = {}
_MAX_COMPILED = 512  # statements come in a few dozen shapes; this only bounds a surprise


def compile_cached(statement: ClauseElement, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """SQL text and parameters, compiling each statement shape once (as SQLAlchemy's own
    execution path does): only the parameter values differ from one request to the next."""
    cache_key = statement._generate_cache_key()
    if cache_key is None:  # a construct SQLAlchemy cannot cache
        once = statement.compile(dialect=dialect)
        return once.string, dict(once.params or {})
    compiled = _COMPILED.get(cache_key.key)
    if compiled is None:
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.clear()
        compiled = _COMPILED[cache_key.key] = statement.compile(dialect=dialect, cache_key=cache_key)
    return compiled.string, dict(compiled.construct_params(extracted_parameters=cache_key.bindparams) or {})
