"""The per-request transaction, and the one statement that sets who is asking.

Every request runs in one transaction whose first statement switches to the least-privileged
role `app_user`, records the caller in `app.user_id`, and sets the transaction's timeouts.
The whole transaction travels to PostgreSQL as one simple-query message: PostgreSQL runs the
statements of one message as one implicit transaction, commits it before it answers, and rolls
all of it back if any statement fails. All settings are transaction-local (`set_config(...,
true)`), so a pooled connection, or a transaction pooler's server connection, never carries
one user's identity into the next request. The row-level-security policies in `db/policies/`
read `app.user_id`.

Values are bound on the client, by psycopg (`ClientCursor`): quoted and escaped for the
connection's encoding, never pasted into SQL by us.
"""

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import AsyncRowFactory, DictRow, dict_row
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from api.config import Settings
from api.database.engine import Database
from api.database.errors import DeadConnection, is_replayable
from api.database.shares import DatabaseShares, ShareExceeded
from api.edge.errors import TooManyRequests
from api.edge.metrics import TRANSACTION_SECONDS

logger = logging.getLogger("api.database")

APP_ROLE = "app_user"

# The identity statement. It lives here and nowhere else.
IDENTITY_SQL = (
    f"select set_config('role', '{APP_ROLE}', true),"
    " set_config('app.user_id', %(app_user_id)s, true),"
    " set_config('statement_timeout', %(app_statement_timeout)s, true),"
    " set_config('lock_timeout', %(app_lock_timeout)s, true)"
)
# Statements are compiled for psycopg's paramstyle, then bound by psycopg on the client.
DIALECT: Dialect = PGDialect_psycopg()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it unannotated

Rows = list[DictRow]


@dataclass(frozen=True)
class Statement:
    """SQL text, this request's values for its placeholders, and how its rows are read."""

    sql: str
    params: Mapping[str, Any]
    rows: AsyncRowFactory[DictRow] = dict_row


@dataclass(frozen=True)
class Prepared:
    """A statement compiled once (SQLAlchemy builds it); each request binds its own values."""

    sql: str
    constants: Mapping[str, Any]  # values SQLAlchemy bound at build time (literals)
    rows: AsyncRowFactory[DictRow] = dict_row

    def bind(self, **params: Any) -> Statement:
        return Statement(self.sql, {**self.constants, **params} if self.constants else params, self.rows)


def prepare(statement: ClauseElement, *, rows: AsyncRowFactory[DictRow] = dict_row) -> Prepared:
    """Compile once; `rows`: how its rows are read (by default, a dict by column name)."""
    compiled = statement.compile(dialect=DIALECT)
    constants = {name: value for name, value in (compiled.params or {}).items() if value is not None}
    return Prepared(compiled.string, constants, rows)


def identity(user_id: str, *, statement_timeout_ms: int, lock_timeout_ms: int) -> dict[str, str]:
    """The identity statement's parameters; an empty `user_id` is nobody (no row is visible)."""
    return {
        "app_user_id": user_id,
        "app_statement_timeout": str(statement_timeout_ms),
        "app_lock_timeout": str(lock_timeout_ms),
    }


class RequestTransaction:
    """One request's transaction, sent to PostgreSQL in a single round trip.

    `run()` sends the identity statement and the request's statements as one message. If a
    statement fails, PostgreSQL rolls the whole message back. Serialization failures and
    deadlocks are replayed whole, a bounded number of times; a read that finds its pooled
    connection dead is retried once on a fresh one; a write is never retried blindly. At most
    the user's share of transactions run at once.
    """

    def __init__(
        self,
        database: Database,
        *,
        settings: Settings,
        identity: dict[str, str],
        attempts: int,
        read_only: bool,
        shares: DatabaseShares | None = None,
    ) -> None:
        self.settings = settings  # what the routes tune by it: search budget, idempotency TTL
        self.database = database
        self.identity = identity
        self.attempts = attempts
        self.read_only = read_only
        self.shares = shares

    @property
    def user_id(self) -> str:
        return self.identity["app_user_id"]

    async def run(self, statement: Statement, *, statement_timeout_ms: int | None = None) -> Rows:
        """Run the request's statement in its own transaction; return its rows."""
        [rows] = await self.run_all([statement], statement_timeout_ms=statement_timeout_ms)
        return rows

    async def run_all(self, statements: Sequence[Statement], *, statement_timeout_ms: int | None = None) -> list[Rows]:
        """Run statements in order in one transaction (still one round trip); the rows of each.

        Each statement sees what the ones before it did, and what other transactions
        committed meanwhile (READ COMMITTED takes a snapshot per statement). A
        `statement_timeout_ms` tightens the transaction's usual timeout (never loosens it).
        """
        settings = self.identity
        if statement_timeout_ms is not None:
            tightened = _tighter(settings["app_statement_timeout"], statement_timeout_ms)
            settings = {**settings, "app_statement_timeout": str(tightened)}
        if self.shares is None:
            return await self._run_with_retries(statements, settings)
        try:
            await self.shares.acquire(self.user_id)
        except ShareExceeded:
            detail = f"more than {self.shares.per_user} of your requests are waiting for the database; retry shortly"
            raise TooManyRequests(detail, reason="database_share", headers={"Retry-After": "1"}) from None
        try:
            return await self._run_with_retries(statements, settings)
        finally:
            self.shares.release(self.user_id)

    async def _run_with_retries(self, statements: Sequence[Statement], settings: dict[str, str]) -> list[Rows]:
        replays, reconnected = 0, False
        while True:
            try:
                return await self._run_once(statements, settings)
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

    async def _run_once(self, statements: Sequence[Statement], settings: dict[str, str]) -> list[Rows]:
        pool = self.database.pool
        message, params = _one_message(statements, settings)
        connection = await pool.acquire()
        try:
            cursor = psycopg.AsyncClientCursor(connection, row_factory=dict_row)
            sent = time.perf_counter()
            await cursor.execute(message, params)
            TRANSACTION_SECONDS.observe(time.perf_counter() - sent)
            results: list[Rows] = []
            for statement in statements:  # the identity statement's result comes first: skipped
                cursor.nextset()
                if not (cursor.pgresult and cursor.pgresult.ntuples):
                    results.append([])
                    continue
                if cursor.row_factory is not statement.rows:
                    cursor.row_factory = statement.rows
                results.append(await cursor.fetchall())
            return results
        except psycopg.Error as exc:
            if connection.broken or connection.closed:
                # A dead connection usually means a restarted server: every idle one is dead.
                await pool.close_idle()
                raise DeadConnection(str(exc)) from exc
            raise
        finally:
            pool.release(connection)  # a broken connection is dropped there, not reused


def _one_message(statements: Sequence[Statement], settings: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The identity statement and the request's statements as one message, and all their values."""
    params: dict[str, Any] = dict(settings)
    for statement in statements:
        clash = {name for name in statement.params.keys() & params.keys() if statement.params[name] != params[name]}
        if clash:  # a mistake in how the statements were written: names must not mean two things
            raise ValueError(f"parameters {sorted(clash)} have two values in one message")
        params.update(statement.params)
    return "; ".join([IDENTITY_SQL, *(statement.sql for statement in statements)]), params


def _tighter(timeout_ms: str, limit_ms: int) -> int:
    """The smaller of two statement timeouts, where 0 means none."""
    return min((value for value in (int(timeout_ms), limit_ms) if value > 0), default=0)
